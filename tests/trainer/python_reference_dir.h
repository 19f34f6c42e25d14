// A folder filled by one of the Python reference scripts in tests/trainer/reference/ (they run
// transformers / tokenizers from the project venv and write what the C++ side must match).
//
//   PythonReferenceDir reference("chat_template_reference.py", "--smollm2-dir DIR",
//                                "TUNELEDGER_CHAT_TEMPLATE_REFERENCE_DIR", "chat_template_parity");
//   ASSERT_EQ(reference.error(), "");
//   ReadText(reference.path() + "/conversations.json");
//
// Runs `python3 <script> --out <temp folder> <args>` into a new temp folder, removed afterwards,
// unless the environment variable `reuse_env` names a folder the script already filled (kept),
// so that a comparison can be rerun without regenerating. error() holds the script's log when it
// failed; path() is empty when no temp folder could be made.
#ifndef TUNELEDGER_TESTS_TRAINER_PYTHON_REFERENCE_DIR_H_
#define TUNELEDGER_TESTS_TRAINER_PYTHON_REFERENCE_DIR_H_

#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace tuneledger::train {

class PythonReferenceDir {
 public:
  PythonReferenceDir(const std::string& script, const std::string& args, const char* reuse_env,
                     const std::string& temp_prefix) {
    if (const char* reuse = std::getenv(reuse_env)) {
      path_ = reuse;
      return;
    }
    std::string pattern = "/tmp/tuneledger_" + temp_prefix + "_XXXXXX";
    std::vector<char> buffer(pattern.begin(), pattern.end());
    buffer.push_back('\0');
    if (::mkdtemp(buffer.data()) == nullptr) return;
    path_ = buffer.data();
    owned_ = true;
    const std::string command = std::string(TUNELEDGER_TEST_PYTHON) + " " + TUNELEDGER_SOURCE_DIR +
                                "/tests/trainer/reference/" + script + " --out " + path_ + " " +
                                args + " > " + path_ + "/reference.log 2>&1";
    if (std::system(command.c_str()) != 0) {
      std::ifstream log(path_ + "/reference.log");
      std::stringstream text;
      text << log.rdbuf();
      error_ = script + " failed:\n" + text.str();
    }
  }
  ~PythonReferenceDir() {
    if (owned_) std::filesystem::remove_all(path_);
  }
  PythonReferenceDir(const PythonReferenceDir&) = delete;
  PythonReferenceDir& operator=(const PythonReferenceDir&) = delete;

  const std::string& path() const { return path_; }
  const std::string& error() const { return error_; }

 private:
  std::string path_;
  bool owned_ = false;
  std::string error_;
};

}  // namespace tuneledger::train

#endif  // TUNELEDGER_TESTS_TRAINER_PYTHON_REFERENCE_DIR_H_
