#include "base/child_process.h"

#include <fcntl.h>
#include <linux/close_range.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "base/status_macros.h"

extern char** environ;

namespace tuneledger {
namespace {

// What the child reports through the close-on-exec pipe when it cannot exec.
enum class ChildStep : int { kDup = 1, kChdir = 2, kExec = 3, kParentGone = 4 };

struct ChildError {
  int step;
  int error_number;
};

const char* StepName(int step) {
  switch (static_cast<ChildStep>(step)) {
    case ChildStep::kDup:
      return "dup2";
    case ChildStep::kChdir:
      return "chdir";
    case ChildStep::kExec:
      return "exec";
    case ChildStep::kParentGone:
      return "parent died before exec";
  }
  return "unknown step";
}

// Owns a file descriptor; closes it on destruction unless released.
class ScopedFd {
 public:
  ScopedFd() = default;
  explicit ScopedFd(int fd) : fd_(fd) {}
  ~ScopedFd() { Reset(); }
  ScopedFd(ScopedFd&& other) noexcept : fd_(other.Release()) {}
  ScopedFd& operator=(ScopedFd&& other) noexcept {
    Reset(other.Release());
    return *this;
  }
  int get() const { return fd_; }
  int Release() { return std::exchange(fd_, -1); }
  void Reset(int fd = -1) {
    if (fd_ >= 0) close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

absl::Status ErrnoError(int error_number, const std::string& program, absl::string_view what) {
  return absl::ErrnoToStatus(error_number, absl::StrCat(program, ": ", what));
}

// Resolves argv[0] the way execvp would, but before fork (execvp may allocate).
absl::StatusOr<std::string> ResolveProgram(const std::string& program,
                                           const std::string& path_value) {
  if (program.find('/') != std::string::npos) return program;
  for (absl::string_view dir : absl::StrSplit(path_value, ':')) {
    std::string candidate = absl::StrCat(dir.empty() ? "." : dir, "/", program);
    struct stat info;
    if (stat(candidate.c_str(), &info) == 0 && S_ISREG(info.st_mode) &&
        access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
  }
  return absl::NotFoundError(absl::StrCat(program, ": not found in PATH (", path_value, ")"));
}

std::map<std::string, std::string> ChildEnvironment(const ChildProcessOptions& options) {
  std::map<std::string, std::string> env;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    absl::string_view text(*entry);
    size_t eq = text.find('=');
    if (eq == absl::string_view::npos) continue;
    env.emplace(std::string(text.substr(0, eq)), std::string(text.substr(eq + 1)));
  }
  for (const std::string& name : options.unset_env) env.erase(name);
  for (const auto& [name, value] : options.env) env[name] = value;
  return env;
}

// Opens what one standard stream of the child should be. Returns the fd the child dup2()s
// onto the stream and, for kPipe, the parent's end in *parent_end.
absl::StatusOr<ScopedFd> OpenStdioTarget(StdioMode mode, const std::string& path,
                                         const std::string& program, ScopedFd* parent_end) {
  switch (mode) {
    case StdioMode::kInherit:
      return ScopedFd();
    case StdioMode::kNull: {
      int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
      if (fd < 0) return ErrnoError(errno, program, "open /dev/null");
      return ScopedFd(fd);
    }
    case StdioMode::kPipe: {
      int fds[2];
      if (pipe2(fds, O_CLOEXEC) != 0) return ErrnoError(errno, program, "pipe2");
      parent_end->Reset(fds[0]);
      return ScopedFd(fds[1]);
    }
    case StdioMode::kFile: {
      if (path.empty()) {
        return absl::InvalidArgumentError(absl::StrCat(program, ": StdioMode::kFile needs a path"));
      }
      int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      if (fd < 0) return ErrnoError(errno, program, absl::StrCat("open ", path));
      return ScopedFd(fd);
    }
  }
  return absl::InternalError("unknown StdioMode");
}

// Only async-signal-safe calls from here to execve (the parent may be multithreaded).
void WriteChildErrorAndExit(int error_fd, ChildStep step, int error_number) {
  ChildError error{static_cast<int>(step), error_number};
  ssize_t ignored = write(error_fd, &error, sizeof(error));
  (void)ignored;
  _exit(127);
}

bool MoveFdTo(int fd, int target) {
  if (fd < 0) return true;
  if (fd == target) {
    // dup2 onto itself keeps close-on-exec set: clear it instead.
    int flags = fcntl(fd, F_GETFD);
    return flags >= 0 && fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC) == 0;
  }
  return dup2(fd, target) == target;
}

[[noreturn]] void RunChild(const char* path, char* const* argv, char* const* envp, const char* cwd,
                           int stdin_fd, int stdout_fd, int stderr_fd, int error_fd,
                           int parent_death_signal, pid_t parent_pid) {
  // Every signal is blocked here (the parent blocked them around fork), so no inherited
  // handler can run while dispositions go back to their defaults.
  struct sigaction default_action;
  std::memset(&default_action, 0, sizeof(default_action));
  default_action.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) sigaction(sig, &default_action, nullptr);

  setpgid(0, 0);
  if (parent_death_signal != 0) {
    prctl(PR_SET_PDEATHSIG, parent_death_signal);
    // The parent may have died before prctl: then nobody would ever send the signal.
    if (getppid() != parent_pid) WriteChildErrorAndExit(error_fd, ChildStep::kParentGone, 0);
  }
  if (!MoveFdTo(stdin_fd, STDIN_FILENO) || !MoveFdTo(stdout_fd, STDOUT_FILENO) ||
      !MoveFdTo(stderr_fd, STDERR_FILENO)) {
    WriteChildErrorAndExit(error_fd, ChildStep::kDup, errno);
  }
  if (cwd != nullptr && chdir(cwd) != 0) {
    WriteChildErrorAndExit(error_fd, ChildStep::kChdir, errno);
  }
  // Whatever else the parent had open (sockets, database files) must not leak into the
  // child; the error pipe is already close-on-exec.
  close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);

  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  execve(path, argv, envp);
  WriteChildErrorAndExit(error_fd, ChildStep::kExec, errno);
  _exit(127);  // not reached
}

ExitStatus DecodeWaitStatus(int wait_status) {
  ExitStatus status;
  if (WIFEXITED(wait_status)) {
    status.exited = true;
    status.code = WEXITSTATUS(wait_status);
  } else if (WIFSIGNALED(wait_status)) {
    status.signaled = true;
    status.signal = WTERMSIG(wait_status);
  }
  return status;
}

int PollMillis(absl::Duration remaining) {
  if (remaining == absl::InfiniteDuration()) return -1;
  int64_t millis = absl::ToInt64Milliseconds(absl::Ceil(remaining, absl::Milliseconds(1)));
  return static_cast<int>(std::clamp<int64_t>(millis, 0, 60'000));
}

// Appends what is readable on fd to *out. Returns false at EOF or on error.
bool DrainReadable(int fd, std::string* out) {
  char buffer[8192];
  while (true) {
    ssize_t n = read(fd, buffer, sizeof(buffer));
    if (n > 0) {
      out->append(buffer, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    return false;
  }
}

std::string Tail(const std::string& text, size_t max_chars) {
  return text.size() <= max_chars ? text : "..." + text.substr(text.size() - max_chars);
}

}  // namespace

std::string ExitStatus::ToString() const {
  if (exited) return absl::StrCat("exit code ", code);
  if (signaled) return absl::StrCat("killed by signal ", signal, " (", strsignal(signal), ")");
  return "unknown exit (reaped elsewhere)";
}

absl::StatusOr<std::unique_ptr<ChildProcess>> ChildProcess::Start(
    const ChildProcessOptions& options) {
  if (options.argv.empty() || options.argv[0].empty()) {
    return absl::InvalidArgumentError("ChildProcess: argv is empty");
  }
  const std::string& program = options.argv[0];

  // Everything the child needs is built here, before fork.
  std::map<std::string, std::string> env = ChildEnvironment(options);
  auto path_it = env.find("PATH");
  TL_ASSIGN_OR_RETURN(
      const std::string resolved,
      ResolveProgram(program, path_it != env.end() ? path_it->second : "/usr/bin:/bin"));

  std::vector<std::string> env_strings;
  env_strings.reserve(env.size());
  for (const auto& [name, value] : env) env_strings.push_back(absl::StrCat(name, "=", value));
  std::vector<char*> envp;
  for (std::string& entry : env_strings) envp.push_back(entry.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_strings = options.argv;
  std::vector<char*> argv;
  for (std::string& arg : argv_strings) argv.push_back(arg.data());
  argv.push_back(nullptr);

  ScopedFd stdin_fd;
  if (!options.inherit_stdin) {
    stdin_fd.Reset(open("/dev/null", O_RDONLY | O_CLOEXEC));
    if (stdin_fd.get() < 0) return ErrnoError(errno, program, "open /dev/null");
  }
  ScopedFd stdout_parent;
  ScopedFd stderr_parent;
  TL_ASSIGN_OR_RETURN(
      ScopedFd stdout_child,
      OpenStdioTarget(options.stdout_mode, options.stdout_path, program, &stdout_parent));
  ScopedFd stderr_child;
  if (options.stderr_mode == StdioMode::kFile && options.stdout_mode == StdioMode::kFile &&
      options.stderr_path == options.stdout_path) {
    // One file for both: share the descriptor so the two streams interleave in order.
    stderr_child.Reset(fcntl(stdout_child.get(), F_DUPFD_CLOEXEC, 3));
    if (stderr_child.get() < 0) return ErrnoError(errno, program, "dup stdout");
  } else {
    TL_ASSIGN_OR_RETURN(stderr_child, OpenStdioTarget(options.stderr_mode, options.stderr_path,
                                                      program, &stderr_parent));
  }

  int error_pipe[2];
  if (pipe2(error_pipe, O_CLOEXEC) != 0) return ErrnoError(errno, program, "pipe2");
  ScopedFd error_read(error_pipe[0]);
  ScopedFd error_write(error_pipe[1]);

  const char* cwd = options.cwd.empty() ? nullptr : options.cwd.c_str();
  const pid_t parent_pid = getpid();

  // Block every signal across fork so that no handler of the parent runs in the child before
  // RunChild has reset the dispositions; the parent's mask is restored right after.
  sigset_t all_signals;
  sigset_t saved_mask;
  sigfillset(&all_signals);
  pthread_sigmask(SIG_SETMASK, &all_signals, &saved_mask);
  pid_t pid = fork();
  if (pid == 0) {
    RunChild(resolved.c_str(), argv.data(), envp.data(), cwd, stdin_fd.get(), stdout_child.get(),
             stderr_child.get(), error_write.get(), options.parent_death_signal, parent_pid);
  }
  int fork_errno = errno;
  pthread_sigmask(SIG_SETMASK, &saved_mask, nullptr);
  if (pid < 0) return ErrnoError(fork_errno, program, "fork");

  // The child's ends belong to the child now.
  error_write.Reset();
  stdin_fd.Reset();
  stdout_child.Reset();
  stderr_child.Reset();

  // EOF on the error pipe = exec succeeded (close-on-exec closed the child's end).
  ChildError error{0, 0};
  ssize_t got;
  do {
    got = read(error_read.get(), &error, sizeof(error));
  } while (got < 0 && errno == EINTR);
  if (got > 0) {
    int wait_status;
    while (waitpid(pid, &wait_status, 0) < 0 && errno == EINTR) {
    }
    if (error.step == static_cast<int>(ChildStep::kParentGone)) {
      return absl::AbortedError(absl::StrCat(program, ": ", StepName(error.step)));
    }
    return ErrnoError(error.error_number, program,
                      absl::StrCat(StepName(error.step), " ", resolved));
  }

  // Debian 12's <sys/pidfd.h> lacks C++ linkage, so call the syscall directly. -1 on kernels
  // without it: Wait() then polls.
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (pidfd >= 0) fcntl(pidfd, F_SETFD, FD_CLOEXEC);
  return std::unique_ptr<ChildProcess>(
      new ChildProcess(pid, pidfd, stdout_parent.Release(), stderr_parent.Release()));
}

absl::StatusOr<CompletedProcess> ChildProcess::RunToCompletion(ChildProcessOptions options,
                                                               absl::Duration timeout) {
  options.stdout_mode = StdioMode::kPipe;
  options.stderr_mode = StdioMode::kPipe;
  const absl::Time deadline = absl::Now() + timeout;
  TL_ASSIGN_OR_RETURN(const std::unique_ptr<ChildProcess> started, Start(options));
  ChildProcess& child = *started;
  for (int fd : {child.stdout_fd_, child.stderr_fd_}) {
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  }

  CompletedProcess result;
  bool stdout_open = true;
  bool stderr_open = true;
  bool ended = false;
  // Read until both pipes hit EOF or the child ended (a grandchild could hold the pipes open
  // for longer: once the child is gone, what is readable now is all we take).
  while ((stdout_open || stderr_open) && !ended) {
    absl::Duration remaining = deadline - absl::Now();
    if (remaining <= absl::ZeroDuration()) break;
    pollfd fds[3] = {{stdout_open ? child.stdout_fd_ : -1, POLLIN, 0},
                     {stderr_open ? child.stderr_fd_ : -1, POLLIN, 0},
                     {child.pidfd_, POLLIN, 0}};
    int ready = poll(fds, 3, child.pidfd_ >= 0 ? PollMillis(remaining) : 10);
    if (ready < 0 && errno != EINTR) return ErrnoError(errno, options.argv[0], "poll");
    if (stdout_open && fds[0].revents != 0) {
      stdout_open = DrainReadable(child.stdout_fd_, &result.stdout_text);
    }
    if (stderr_open && fds[1].revents != 0) {
      stderr_open = DrainReadable(child.stderr_fd_, &result.stderr_text);
    }
    if (child.pidfd_ >= 0 ? fds[2].revents != 0 : false) ended = true;
  }
  if (ended) {
    if (stdout_open) DrainReadable(child.stdout_fd_, &result.stdout_text);
    if (stderr_open) DrainReadable(child.stderr_fd_, &result.stderr_text);
  }

  absl::StatusOr<ExitStatus> status =
      child.Wait(std::max(deadline - absl::Now(), absl::ZeroDuration()));
  if (!status.ok()) {
    ExitStatus killed = child.Terminate(absl::Seconds(2));
    return absl::DeadlineExceededError(
        absl::StrCat(options.argv[0], ": still running after ", absl::FormatDuration(timeout),
                     " (then ", killed.ToString(), "); stdout: ", Tail(result.stdout_text, 2000),
                     "; stderr: ", Tail(result.stderr_text, 2000)));
  }
  result.status = *status;
  return result;
}

ChildProcess::ChildProcess(pid_t pid, int pidfd, int stdout_fd, int stderr_fd)
    : pid_(pid), pidfd_(pidfd), stdout_fd_(stdout_fd), stderr_fd_(stderr_fd) {}

ChildProcess::~ChildProcess() {
  {
    absl::MutexLock lock(&mu_);
    if (!exit_status_.has_value()) {
      kill(-pid_, SIGKILL);
      kill(pid_, SIGKILL);  // in case the child left its group
      int wait_status;
      pid_t reaped;
      do {
        reaped = waitpid(pid_, &wait_status, 0);
      } while (reaped < 0 && errno == EINTR);
      exit_status_ = reaped == pid_ ? DecodeWaitStatus(wait_status) : ExitStatus{};
    }
  }
  CloseStdout();
  CloseStderr();
  if (pidfd_ >= 0) close(pidfd_);
}

void ChildProcess::CloseStdout() {
  if (stdout_fd_ >= 0) close(std::exchange(stdout_fd_, -1));
}

void ChildProcess::CloseStderr() {
  if (stderr_fd_ >= 0) close(std::exchange(stderr_fd_, -1));
}

absl::Status ChildProcess::Signal(int sig) {
  absl::MutexLock lock(&mu_);
  if (exit_status_.has_value()) {
    return absl::FailedPreconditionError(
        absl::StrCat("process ", pid_, " already ended (", exit_status_->ToString(), ")"));
  }
  // Until it is reaped the pid (and so the group id) cannot be reused.
  if (kill(-pid_, sig) == 0) return absl::OkStatus();
  if (kill(pid_, sig) == 0) return absl::OkStatus();
  return absl::ErrnoToStatus(errno, absl::StrCat("kill ", pid_, " signal ", sig));
}

bool ChildProcess::ReapIfEnded() {
  if (exit_status_.has_value()) return true;
  int wait_status;
  pid_t reaped;
  do {
    reaped = waitpid(pid_, &wait_status, WNOHANG);
  } while (reaped < 0 && errno == EINTR);
  if (reaped == pid_) {
    exit_status_ = DecodeWaitStatus(wait_status);
    return true;
  }
  if (reaped < 0 && errno == ECHILD) {
    exit_status_ = ExitStatus{};  // someone else reaped it
    return true;
  }
  return false;
}

std::optional<ExitStatus> ChildProcess::TryWait() {
  absl::MutexLock lock(&mu_);
  if (ReapIfEnded()) return exit_status_;
  return std::nullopt;
}

bool ChildProcess::WaitForEnd(absl::Duration timeout) {
  const absl::Time deadline =
      timeout == absl::InfiniteDuration() ? absl::InfiniteFuture() : absl::Now() + timeout;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (exit_status_.has_value()) return true;
      // WNOWAIT: see that it ended but leave the zombie, so its group id stays reserved.
      siginfo_t info;
      std::memset(&info, 0, sizeof(info));
      int rc = waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT);
      if (rc == 0 && info.si_pid == pid_) return true;
      if (rc < 0 && errno == ECHILD) return true;
    }
    absl::Duration remaining =
        deadline == absl::InfiniteFuture() ? absl::InfiniteDuration() : deadline - absl::Now();
    if (remaining <= absl::ZeroDuration()) return false;
    if (pidfd_ >= 0) {
      pollfd fd = {pidfd_, POLLIN, 0};
      poll(&fd, 1, PollMillis(remaining));
    } else {
      absl::SleepFor(std::min(remaining, absl::Milliseconds(5)));
    }
  }
}

absl::StatusOr<ExitStatus> ChildProcess::Wait(absl::Duration timeout) {
  if (!WaitForEnd(timeout)) {
    return absl::DeadlineExceededError(
        absl::StrCat("process ", pid_, " still running after ", absl::FormatDuration(timeout)));
  }
  absl::MutexLock lock(&mu_);
  ReapIfEnded();
  return *exit_status_;
}

ExitStatus ChildProcess::Terminate(absl::Duration grace) {
  {
    absl::MutexLock lock(&mu_);
    if (exit_status_.has_value()) return *exit_status_;
  }
  Signal(SIGTERM).IgnoreError();  // fails only if it was reaped meanwhile
  if (!WaitForEnd(grace)) {
    Signal(SIGKILL).IgnoreError();
    WaitForEnd(absl::InfiniteDuration());
  }
  absl::MutexLock lock(&mu_);
  if (!exit_status_.has_value()) {
    // The leader ended but is not reaped, so its group id is still reserved: whatever it
    // started in its group and left behind goes now.
    kill(-pid_, SIGKILL);
  }
  ReapIfEnded();
  return *exit_status_;
}

}  // namespace tuneledger
