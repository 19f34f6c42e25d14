// ChildProcess: the one way this project starts another program (the worker runs the trainer,
// the server runs local workers, test harnesses run servers and tunectl).
//
//   ChildProcessOptions options;
//   options.argv = {"/path/tuneledger-train", "--spec", spec, "--out", out};
//   options.env = {{"CUDA_VISIBLE_DEVICES", "0"}};
//   options.stdout_mode = StdioMode::kPipe;          // read it from stdout_fd()
//   options.stderr_mode = StdioMode::kFile;          // appended to stderr_path
//   options.stderr_path = out + "/train.log";
//   TL_ASSIGN_OR_RETURN(std::unique_ptr<ChildProcess> child, ChildProcess::Start(options));
//   ...
//   ExitStatus status = child->Terminate(absl::Seconds(5));  // SIGTERM, wait, SIGKILL, reap
//
// Every child runs in its own process group (its pid is the group id), so a terminal's Ctrl-C
// reaches only the parent, and Signal() reaches the child together with anything it started.
// The child starts with all signals unblocked and at their default dispositions (a parent that
// blocks SIGTERM for sigwait or ignores SIGPIPE does not pass that on), stdin on /dev/null
// unless inherited, and no file descriptors but 0, 1 and 2.
//
// Forking from a multithreaded process: everything the child needs (argv, envp, the resolved
// executable path, opened files, pipes) is prepared before fork(); between fork() and exec the
// child makes only async-signal-safe calls. A failed exec is reported by Start() as an error
// (through a close-on-exec pipe), not as a child that exits 127.
//
// The child is reaped only through this object: do not call waitpid(-1, ...) elsewhere and do
// not set SIGCHLD to SIG_IGN in a process that uses ChildProcess.
//
// Thread safety: all methods may be called concurrently from any threads. Wait() does not hold
// the internal lock while it blocks, so Signal() and Terminate() from another thread proceed
// while one thread waits. The destructor must not race with other calls.
#ifndef TUNELEDGER_BASE_CHILD_PROCESS_H_
#define TUNELEDGER_BASE_CHILD_PROCESS_H_

#include <sys/types.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace tuneledger {

// Where one of the child's standard streams goes.
enum class StdioMode {
  kInherit,  // the parent's stream
  kNull,     // /dev/null
  kPipe,     // a pipe whose parent end is stdout_fd() / stderr_fd()
  kFile,     // appended to a file (created 0644 if missing)
};

struct ChildProcessOptions {
  // argv[0] is the program: a path with a '/' is used as is, a bare name is looked up in PATH
  // (before fork).
  std::vector<std::string> argv;
  // Set (or override) in the child's environment, on top of the parent's.
  std::map<std::string, std::string> env;
  // Removed from the child's environment (applied before env).
  std::vector<std::string> unset_env;
  // Working directory of the child; empty = the parent's.
  std::string cwd;

  bool inherit_stdin = false;  // false: stdin is /dev/null
  StdioMode stdout_mode = StdioMode::kInherit;
  std::string stdout_path;  // kFile only
  StdioMode stderr_mode = StdioMode::kInherit;
  std::string stderr_path;  // kFile only (may equal stdout_path: both go to one file)

  // Have the kernel send this signal to the child when its parent dies (PR_SET_PDEATHSIG);
  // 0 = off. Linux ties this to the *thread* that forked, not the process: the signal fires
  // when the thread that called Start() exits. So call Start() from a thread that outlives the
  // child (main, or a supervisor thread that stops its children before it returns).
  int parent_death_signal = 0;
};

// How a child ended.
struct ExitStatus {
  bool exited = false;  // ended by exit(): code is valid
  int code = 0;
  bool signaled = false;  // ended by a signal: signal is valid
  int signal = 0;

  bool success() const { return exited && code == 0; }
  // "exit code 3", "killed by signal 9 (Killed)".
  std::string ToString() const;
};

// What RunToCompletion() gathers.
struct CompletedProcess {
  ExitStatus status;
  std::string stdout_text;  // empty unless stdout_mode was kPipe
  std::string stderr_text;  // empty unless stderr_mode was kPipe
};

class ChildProcess {
 public:
  // Starts the child. Errors: INVALID_ARGUMENT (empty argv), NOT_FOUND (program not found in
  // PATH), and the errno of a failed open/pipe/fork/chdir/exec mapped to a Status whose message
  // names the program and the step that failed.
  static absl::StatusOr<std::unique_ptr<ChildProcess>> Start(const ChildProcessOptions& options);

  // Starts the child with stdout and stderr captured to pipes (whatever the options said about
  // them), reads both until the child exits, and reaps it. If the child is still running at
  // the timeout it is terminated (SIGTERM, 2 s grace, SIGKILL) and DEADLINE_EXCEEDED is
  // returned with the output gathered so far in the message's tail.
  static absl::StatusOr<CompletedProcess> RunToCompletion(ChildProcessOptions options,
                                                          absl::Duration timeout);

  // Kills (SIGKILL to the group) and reaps a child that is still running.
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  // Parent ends of the pipes (kPipe), -1 otherwise. Owned by this object; closed by the
  // destructor or CloseStdout()/CloseStderr(). Close-on-exec.
  int stdout_fd() const { return stdout_fd_; }
  int stderr_fd() const { return stderr_fd_; }
  void CloseStdout();
  void CloseStderr();

  // Sends sig to the child's process group. FAILED_PRECONDITION once the child was reaped (its
  // pid may belong to someone else by then).
  absl::Status Signal(int sig);

  // The exit status if the child has ended (reaping it), without blocking.
  std::optional<ExitStatus> TryWait();
  // Blocks until the child ends or timeout passes: DEADLINE_EXCEEDED while it still runs.
  absl::StatusOr<ExitStatus> Wait(absl::Duration timeout = absl::InfiniteDuration());
  // SIGTERM to the group, waits up to grace, then SIGKILL, and reaps. Returns at once with the
  // recorded status if the child has already been reaped.
  ExitStatus Terminate(absl::Duration grace);

 private:
  ChildProcess(pid_t pid, int pidfd, int stdout_fd, int stderr_fd);
  // Reaps the child if it has ended; sets exit_status_. Returns true once reaped.
  bool ReapIfEnded() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Blocks (without holding mu_) until the child has ended or was reaped, leaving a zombie
  // unreaped. False at the timeout.
  bool WaitForEnd(absl::Duration timeout) ABSL_LOCKS_EXCLUDED(mu_);

  const pid_t pid_;
  const int pidfd_;  // readable once the child ended; -1 if pidfd_open is unavailable
  int stdout_fd_;
  int stderr_fd_;

  // mu_ guards the reaped state, so that no signal is sent to a pid after it was reaped.
  absl::Mutex mu_;
  std::optional<ExitStatus> exit_status_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tuneledger

#endif  // TUNELEDGER_BASE_CHILD_PROCESS_H_
