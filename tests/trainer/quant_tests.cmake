# Tests of tuneledger::trainer_quant, the NF4 / INT8 CPU reference (no LibTorch: seconds).
add_executable(trainer_quant_unit_tests ${CMAKE_CURRENT_LIST_DIR}/quant_block_quant_test.cc)
target_link_libraries(trainer_quant_unit_tests PRIVATE tuneledger::trainer_quant
                      tuneledger::testing tuneledger::warnings)
gtest_discover_tests(trainer_quant_unit_tests PROPERTIES LABELS unit DISCOVERY_TIMEOUT 60)
