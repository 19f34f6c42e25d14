# Recipe-side trainer tests: data, tokenizers, spec, schedule, checkpoints, resume, determinism,
# divergence, the demo. They reuse the model library's precompiled header.
set(_recipe_dir ${CMAKE_CURRENT_LIST_DIR})

add_library(tuneledger_recipe_test_util STATIC ${_recipe_dir}/recipe_test_util.cc)
target_link_libraries(tuneledger_recipe_test_util PUBLIC tuneledger::trainer tuneledger::testing)
target_precompile_headers(tuneledger_recipe_test_util REUSE_FROM tuneledger_trainer_model)

# Trains SentencePiece models for the tokenizer test, outside any process that loads LibTorch.
add_executable(trainer_recipe_spm_train ${_recipe_dir}/recipe_spm_train_tool.cc)
target_link_libraries(trainer_recipe_spm_train PRIVATE PkgConfig::SENTENCEPIECE)

# Unit: in-process, seconds.
add_executable(trainer_recipe_unit_tests
  ${_recipe_dir}/recipe_batcher_test.cc
  ${_recipe_dir}/recipe_checkpoint_test.cc
  ${_recipe_dir}/recipe_data_selection_test.cc
  ${_recipe_dir}/recipe_dataset_test.cc
  ${_recipe_dir}/recipe_host_allocator_test.cc
  ${_recipe_dir}/recipe_job_spec_test.cc
  ${_recipe_dir}/recipe_loss_test.cc
  ${_recipe_dir}/recipe_lr_schedule_test.cc
  ${_recipe_dir}/recipe_tokenizer_test.cc
)
target_link_libraries(trainer_recipe_unit_tests PRIVATE tuneledger_recipe_test_util
                      tuneledger::warnings)
target_precompile_headers(trainer_recipe_unit_tests REUSE_FROM tuneledger_trainer_model)
add_dependencies(trainer_recipe_unit_tests trainer_recipe_spm_train)
gtest_discover_tests(trainer_recipe_unit_tests PROPERTIES LABELS unit DISCOVERY_TIMEOUT 60)

# Integration: runs tuneledger-train as a process on a tiny random model (tens of seconds).
add_executable(trainer_recipe_process_tests
  ${_recipe_dir}/recipe_data_parallel_test.cc
  ${_recipe_dir}/recipe_data_selection_process_test.cc
  ${_recipe_dir}/recipe_peft_reference_test.cc
  ${_recipe_dir}/recipe_symbol_binding_test.cc
  ${_recipe_dir}/recipe_train_process_test.cc)
target_link_libraries(trainer_recipe_process_tests PRIVATE tuneledger_recipe_test_util
                      tuneledger::warnings)
target_precompile_headers(trainer_recipe_process_tests REUSE_FROM tuneledger_trainer_model)
add_dependencies(trainer_recipe_process_tests tuneledger-train tuneledger-pretrain
                 tuneledger-generate)
gtest_discover_tests(trainer_recipe_process_tests PROPERTIES LABELS integration TIMEOUT 600
                     DISCOVERY_TIMEOUT 60)

# Slow: the demo LoRA job on the bundled model (models/), measured against its 2-minute bar.
add_executable(trainer_recipe_demo_test ${_recipe_dir}/recipe_demo_test.cc)
target_link_libraries(trainer_recipe_demo_test PRIVATE tuneledger_recipe_test_util
                      tuneledger::warnings)
target_precompile_headers(trainer_recipe_demo_test REUSE_FROM tuneledger_trainer_model)
add_dependencies(trainer_recipe_demo_test tuneledger-train)
gtest_discover_tests(trainer_recipe_demo_test PROPERTIES LABELS slow TIMEOUT 900
                     DISCOVERY_TIMEOUT 60)
