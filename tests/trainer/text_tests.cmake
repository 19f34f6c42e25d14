# Tests of tuneledger::lm_text (no LibTorch: they build in seconds).
set(_text_dir ${CMAKE_CURRENT_LIST_DIR})

# Unit: inline tokenizer.json files, the regex matcher, NFC, the error paths; the Jinja subset
# and HfChatTemplate's refusals.
add_executable(trainer_text_unit_tests ${_text_dir}/text_hf_tokenizer_test.cc
               ${_text_dir}/text_jinja_template_test.cc)
target_link_libraries(trainer_text_unit_tests PRIVATE tuneledger::lm_text tuneledger::testing
                      tuneledger::warnings)
gtest_discover_tests(trainer_text_unit_tests PROPERTIES LABELS unit DISCOVERY_TIMEOUT 60)

# Integration: parity with the Python tokenizers library on tokenizers it trains
# (reference/tokenizer_reference.py; each test trains only its own tokenizer, ~5 s).
add_executable(trainer_text_parity_tests ${_text_dir}/text_hf_tokenizer_parity_test.cc)
target_link_libraries(trainer_text_parity_tests PRIVATE tuneledger::lm_text
                      tuneledger::testing tuneledger::warnings)
gtest_discover_tests(trainer_text_parity_tests PROPERTIES LABELS integration TIMEOUT 600
                     DISCOVERY_TIMEOUT 60)

# Integration: chat templates rendered byte for byte as transformers' apply_chat_template renders
# them (reference/chat_template_reference.py; ~6 s per test, most of it importing transformers).
add_executable(trainer_text_chat_template_parity_tests
               ${_text_dir}/text_chat_template_parity_test.cc)
target_link_libraries(trainer_text_chat_template_parity_tests PRIVATE tuneledger::lm_text
                      tuneledger::testing tuneledger::warnings)
gtest_discover_tests(trainer_text_chat_template_parity_tests PROPERTIES LABELS integration
                     TIMEOUT 300 DISCOVERY_TIMEOUT 60)
