# tuneledger::trainer: the recipe side of the trainer (job spec, tokenizers, data, batching, lr
# schedule, optimizer, loss scaling, checkpoints, progress lines, the named training steps) and
# the executables built on it:
#   tuneledger-train     LoRA fine-tuning (PROGRESS_PROTOCOL.md)
#   tuneledger-pretrain  full training of a small model from scratch (builds models/tiny-llama)
# Links the model library and nlohmann_json; no gRPC, protobuf or Abseil. libsentencepiece is
# reached only through libtuneledger_sentencepiece.so, a shim loaded with dlopen (see
# sentencepiece_shim.h: Debian's libsentencepiece carries its own protobuf-lite, which crashes a
# process that also loads LibTorch's libprotobuf when both are linked normally).

# The shim: the only code that links libsentencepiece. Lands in <build>/lib/, found from
# <build>/bin/ executables as ../lib/ (and from anywhere via its build path).
add_library(tuneledger_sentencepiece MODULE ${CMAKE_CURRENT_LIST_DIR}/sentencepiece_shim.cc)
target_include_directories(tuneledger_sentencepiece PRIVATE ${PROJECT_SOURCE_DIR})
target_link_libraries(tuneledger_sentencepiece PRIVATE PkgConfig::SENTENCEPIECE
                      tuneledger::warnings)
set_target_properties(tuneledger_sentencepiece PROPERTIES
  OUTPUT_NAME tuneledger_sentencepiece
  LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/lib
  CXX_VISIBILITY_PRESET hidden)

add_library(tuneledger_trainer STATIC
  ${CMAKE_CURRENT_LIST_DIR}/batcher.cc
  ${CMAKE_CURRENT_LIST_DIR}/byte_tokenizer.cc
  ${CMAKE_CURRENT_LIST_DIR}/causal_lm_loss.cc
  ${CMAKE_CURRENT_LIST_DIR}/chat_template.cc
  ${CMAKE_CURRENT_LIST_DIR}/checkpoint_io.cc
  ${CMAKE_CURRENT_LIST_DIR}/job_spec.cc
  ${CMAKE_CURRENT_LIST_DIR}/jsonl_dataset.cc
  ${CMAKE_CURRENT_LIST_DIR}/loss_scaler.cc
  ${CMAKE_CURRENT_LIST_DIR}/lr_schedule.cc
  ${CMAKE_CURRENT_LIST_DIR}/optimizer_setup.cc
  ${CMAKE_CURRENT_LIST_DIR}/progress_reporter.cc
  ${CMAKE_CURRENT_LIST_DIR}/sentencepiece_tokenizer.cc
  ${CMAKE_CURRENT_LIST_DIR}/stop_signal.cc
  ${CMAKE_CURRENT_LIST_DIR}/thread_environment.cc
  ${CMAKE_CURRENT_LIST_DIR}/tokenizer.cc
  ${CMAKE_CURRENT_LIST_DIR}/train_loop.cc
  ${CMAKE_CURRENT_LIST_DIR}/train_state.cc
)
add_library(tuneledger::trainer ALIAS tuneledger_trainer)
target_link_libraries(tuneledger_trainer
  PUBLIC tuneledger::trainer_model nlohmann_json::nlohmann_json ${CMAKE_DL_LIBS}
  PRIVATE tuneledger::warnings)
target_precompile_headers(tuneledger_trainer REUSE_FROM tuneledger_trainer_model)
add_dependencies(tuneledger_trainer tuneledger_sentencepiece)
set_source_files_properties(${CMAKE_CURRENT_LIST_DIR}/sentencepiece_tokenizer.cc PROPERTIES
  COMPILE_DEFINITIONS
  "TUNELEDGER_SENTENCEPIECE_SHIM_PATH=\"$<TARGET_FILE:tuneledger_sentencepiece>\"")

add_executable(tuneledger-train ${CMAKE_CURRENT_LIST_DIR}/train_main.cc)
target_link_libraries(tuneledger-train PRIVATE tuneledger::trainer tuneledger::warnings)
target_precompile_headers(tuneledger-train REUSE_FROM tuneledger_trainer_model)

add_executable(tuneledger-pretrain ${CMAKE_CURRENT_LIST_DIR}/pretrain_main.cc)
target_link_libraries(tuneledger-pretrain PRIVATE tuneledger::trainer tuneledger::warnings)
target_precompile_headers(tuneledger-pretrain REUSE_FROM tuneledger_trainer_model)
