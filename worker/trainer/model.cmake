# tuneledger::trainer_model: safetensors, the Llama model, LoRA, checkpointing, PEFT adapter,
# generation. Links LibTorch and nlohmann_json only.
#
# Precompiled header: <torch/torch.h> + <nlohmann/json.hpp>, built once with this target.
# Other trainer targets (the recipe library, test executables) reuse it instead of building
# their own; they must compile with the same flags (same build type, no extra -f options):
#   target_precompile_headers(<target> REUSE_FROM tuneledger_trainer_model)
# Parse-only speedup: a TU that includes torch then costs ~9 s instead of ~22 s here.
add_library(tuneledger_trainer_model STATIC
  ${CMAKE_CURRENT_LIST_DIR}/checkpointed_layer.cc
  ${CMAKE_CURRENT_LIST_DIR}/generation.cc
  ${CMAKE_CURRENT_LIST_DIR}/llama_attention.cc
  ${CMAKE_CURRENT_LIST_DIR}/llama_decoder_layer.cc
  ${CMAKE_CURRENT_LIST_DIR}/llama_mlp.cc
  ${CMAKE_CURRENT_LIST_DIR}/llama_model.cc
  ${CMAKE_CURRENT_LIST_DIR}/lora_linear.cc
  ${CMAKE_CURRENT_LIST_DIR}/model_config.cc
  ${CMAKE_CURRENT_LIST_DIR}/model_loader.cc
  ${CMAKE_CURRENT_LIST_DIR}/peft_adapter.cc
  ${CMAKE_CURRENT_LIST_DIR}/rms_norm.cc
  ${CMAKE_CURRENT_LIST_DIR}/rotary_embedding.cc
  ${CMAKE_CURRENT_LIST_DIR}/safetensors_reader.cc
  ${CMAKE_CURRENT_LIST_DIR}/safetensors_writer.cc
)
add_library(tuneledger::trainer_model ALIAS tuneledger_trainer_model)
target_include_directories(tuneledger_trainer_model PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(tuneledger_trainer_model
  PUBLIC ${TORCH_LIBRARIES} nlohmann_json::nlohmann_json
  PRIVATE tuneledger::warnings)
target_precompile_headers(tuneledger_trainer_model PRIVATE <torch/torch.h> <nlohmann/json.hpp>)
