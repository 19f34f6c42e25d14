// trainer_recipe_spm_train ARGS...: runs libsentencepiece's trainer with command-line style
// arguments (e.g. --input=corpus.txt --model_prefix=dir/tokenizer --vocab_size=60). A separate,
// torch-free process, because libsentencepiece cannot share a process with LibTorch's
// libprotobuf (worker/trainer/recipe/sentencepiece_shim.h).
#include <sentencepiece_trainer.h>

#include <iostream>
#include <string>

int main(int argc, char** argv) {
  std::string args;
  for (int i = 1; i < argc; ++i) args += std::string(i > 1 ? " " : "") + argv[i];
  const auto status = sentencepiece::SentencePieceTrainer::Train(args);
  if (!status.ok()) {
    std::cerr << "sentencepiece training failed: " << status.ToString() << "\n";
    return 1;
  }
  return 0;
}
