# tuneledger::test_temp_dir: TempDir (temp_dir.h), standard library only, so that the trainer
# tests (LibTorch, no Abseil or gRPC) and the benchmarks link it too. Included by
# tests/testing/CMakeLists.txt and by bench/CMakeLists.txt (which builds without the tests).
include_guard(GLOBAL)
add_library(tuneledger_test_temp_dir STATIC ${CMAKE_CURRENT_LIST_DIR}/temp_dir.cc)
target_include_directories(tuneledger_test_temp_dir PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(tuneledger_test_temp_dir PRIVATE tuneledger::warnings)
add_library(tuneledger::test_temp_dir ALIAS tuneledger_test_temp_dir)
