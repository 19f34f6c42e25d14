# Model-side trainer tests: safetensors, model parity with an independent Python reference,
# LoRA, checkpointing, loader, PEFT adapter, generation. One executable to keep
# link time down; it reuses the model library's precompiled header.
set(_model_tests_dir ${CMAKE_CURRENT_LIST_DIR})
add_executable(trainer_model_tests
  ${_model_tests_dir}/model_test_support.cc
  ${_model_tests_dir}/model_activation_dtype_test.cc
  ${_model_tests_dir}/model_fused_ops_test.cc
  ${_model_tests_dir}/model_hf_reference_test.cc
  ${_model_tests_dir}/model_loader_test.cc
  ${_model_tests_dir}/model_lora_test.cc
  ${_model_tests_dir}/model_parity_test.cc
  ${_model_tests_dir}/model_peft_test.cc
  ${_model_tests_dir}/model_quantized_linear_test.cc
  ${_model_tests_dir}/model_safetensors_test.cc
)
target_link_libraries(trainer_model_tests PRIVATE tuneledger::trainer_model tuneledger::testing
                      tuneledger::warnings)
target_precompile_headers(trainer_model_tests REUSE_FROM tuneledger_trainer_model)
# NO_PRETTY_VALUES: parameterized cases are named by their generators (tests/CMakeLists.txt).
gtest_discover_tests(trainer_model_tests NO_PRETTY_VALUES PROPERTIES LABELS unit TIMEOUT 300
                     DISCOVERY_TIMEOUT 60)
