#include "base/child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace tuneledger {
namespace {

using ::testing::HasSubstr;
using ::tuneledger::testing::StatusIs;
using ::tuneledger::testing::TempDir;

ChildProcessOptions Shell(const std::string& script) {
  ChildProcessOptions options;
  options.argv = {"/bin/sh", "-c", script};
  return options;
}

// Reads one line from fd (blocking; the tests' children write lines promptly).
std::string ReadLine(int fd) {
  std::string line;
  char c;
  while (read(fd, &c, 1) == 1 && c != '\n') line.push_back(c);
  return line;
}

bool ProcessExists(pid_t pid) { return kill(pid, 0) == 0 || errno != ESRCH; }

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(ChildProcessTest, CapturesStdoutStderrAndExitCode) {
  absl::StatusOr<CompletedProcess> result =
      ChildProcess::RunToCompletion(Shell("echo out; echo err >&2; exit 3"), absl::Seconds(30));
  ASSERT_OK(result);
  EXPECT_EQ(result->stdout_text, "out\n");
  EXPECT_EQ(result->stderr_text, "err\n");
  EXPECT_TRUE(result->status.exited);
  EXPECT_EQ(result->status.code, 3);
  EXPECT_FALSE(result->status.success());
  EXPECT_EQ(result->status.ToString(), "exit code 3");
}

TEST(ChildProcessTest, LargeOutputOnBothStreamsDoesNotDeadlock) {
  absl::StatusOr<CompletedProcess> result = ChildProcess::RunToCompletion(
      Shell("head -c 1000000 /dev/zero; head -c 1000000 /dev/zero >&2"), absl::Seconds(30));
  ASSERT_OK(result);
  EXPECT_EQ(result->stdout_text.size(), 1000000u);
  EXPECT_EQ(result->stderr_text.size(), 1000000u);
  EXPECT_TRUE(result->status.success()) << result->status.ToString();
}

TEST(ChildProcessTest, SetsAndUnsetsEnvironmentAndWorkingDirectory) {
  TempDir dir;
  setenv("TL_CHILD_TEST_REMOVED", "present", 1);
  ChildProcessOptions options =
      Shell("echo \"$TL_CHILD_TEST_ADDED|${TL_CHILD_TEST_REMOVED:-unset}|$(pwd -P)\"");
  options.env = {{"TL_CHILD_TEST_ADDED", "hello world"}};
  options.unset_env = {"TL_CHILD_TEST_REMOVED"};
  options.cwd = dir.path();
  absl::StatusOr<CompletedProcess> result =
      ChildProcess::RunToCompletion(options, absl::Seconds(30));
  unsetenv("TL_CHILD_TEST_REMOVED");
  ASSERT_OK(result);
  std::string real_dir = std::filesystem::canonical(dir.path());
  EXPECT_EQ(result->stdout_text, absl::StrCat("hello world|unset|", real_dir, "\n"));
}

TEST(ChildProcessTest, FindsBareProgramNameInPath) {
  ChildProcessOptions options;
  options.argv = {"sh", "-c", "exit 0"};
  options.env = {{"PATH", "/nonexistent:/bin:/usr/bin"}};
  absl::StatusOr<CompletedProcess> result =
      ChildProcess::RunToCompletion(options, absl::Seconds(30));
  ASSERT_OK(result);
  EXPECT_TRUE(result->status.success());
}

TEST(ChildProcessTest, MissingProgramIsAnErrorNotAChild) {
  ChildProcessOptions options;
  options.argv = {"tl-no-such-program-anywhere"};
  EXPECT_THAT(ChildProcess::Start(options).status(),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("tl-no-such-program-anywhere")));

  options.argv = {"/nonexistent/dir/prog"};
  EXPECT_THAT(ChildProcess::Start(options).status(),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("exec /nonexistent/dir/prog")));

  TempDir dir;
  std::string not_executable = dir.path() + "/plain.txt";
  std::ofstream(not_executable) << "text";
  options.argv = {not_executable};
  EXPECT_THAT(ChildProcess::Start(options).status(),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("exec")));

  options = Shell("true");
  options.cwd = dir.path() + "/missing";
  EXPECT_THAT(ChildProcess::Start(options).status(),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("chdir")));

  EXPECT_THAT(ChildProcess::Start(ChildProcessOptions{}).status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(ChildProcessTest, RedirectsToFilesAppending) {
  TempDir dir;
  std::string log = dir.path() + "/log.txt";
  std::ofstream(log) << "before\n";
  ChildProcessOptions options = Shell("echo one; echo two >&2; echo three");
  options.stdout_mode = StdioMode::kFile;
  options.stdout_path = log;
  options.stderr_mode = StdioMode::kFile;
  options.stderr_path = log;
  absl::StatusOr<std::unique_ptr<ChildProcess>> child = ChildProcess::Start(options);
  ASSERT_OK(child);
  EXPECT_EQ((*child)->stdout_fd(), -1);
  absl::StatusOr<ExitStatus> status = (*child)->Wait(absl::Seconds(30));
  ASSERT_OK(status);
  EXPECT_TRUE(status->success());
  EXPECT_EQ(ReadFile(log), "before\none\ntwo\nthree\n");
}

TEST(ChildProcessTest, UnwritableRedirectFileIsAnError) {
  ChildProcessOptions options = Shell("true");
  options.stderr_mode = StdioMode::kFile;
  options.stderr_path = "/nonexistent/dir/train.log";
  EXPECT_THAT(ChildProcess::Start(options).status(),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("/nonexistent/dir/train.log")));
}

TEST(ChildProcessTest, StdinIsDevNullByDefault) {
  absl::StatusOr<CompletedProcess> result =
      ChildProcess::RunToCompletion(Shell("cat; echo end"), absl::Seconds(30));
  ASSERT_OK(result);
  EXPECT_EQ(result->stdout_text, "end\n");
}

TEST(ChildProcessTest, ParentDescriptorsDoNotLeakIntoChild) {
  int leaked = open("/dev/null", O_RDONLY);  // deliberately without O_CLOEXEC
  ASSERT_GE(leaked, 3);
  absl::StatusOr<CompletedProcess> result = ChildProcess::RunToCompletion(
      Shell(absl::StrCat("test -e /proc/self/fd/", leaked, " && echo open || echo closed")),
      absl::Seconds(30));
  close(leaked);
  ASSERT_OK(result);
  EXPECT_EQ(result->stdout_text, "closed\n");
}

TEST(ChildProcessTest, TryWaitAndWaitWithTimeout) {
  ChildProcessOptions options = Shell("echo ready; exec sleep 30");
  options.stdout_mode = StdioMode::kPipe;
  absl::StatusOr<std::unique_ptr<ChildProcess>> child = ChildProcess::Start(options);
  ASSERT_OK(child);
  ASSERT_EQ(ReadLine((*child)->stdout_fd()), "ready");
  EXPECT_FALSE((*child)->TryWait().has_value());
  EXPECT_THAT((*child)->Wait(absl::Milliseconds(50)).status(),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  ASSERT_OK((*child)->Signal(SIGUSR1));
  absl::StatusOr<ExitStatus> status = (*child)->Wait(absl::Seconds(30));
  ASSERT_OK(status);
  EXPECT_TRUE(status->signaled);
  EXPECT_EQ(status->signal, SIGUSR1);
  ASSERT_TRUE((*child)->TryWait().has_value());
  EXPECT_EQ((*child)->TryWait()->signal, SIGUSR1);
  // Reaped: its pid may be someone else's now, so no more signals.
  EXPECT_THAT((*child)->Signal(SIGTERM), StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST(ChildProcessTest, ChildRunsInItsOwnProcessGroup) {
  ChildProcessOptions options = Shell("ps -o pgid= -p $$");
  options.stdout_mode = StdioMode::kPipe;
  absl::StatusOr<std::unique_ptr<ChildProcess>> started = ChildProcess::Start(options);
  ASSERT_OK(started);
  std::string line = ReadLine((*started)->stdout_fd());
  int pgid = 0;
  ASSERT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(line), &pgid)) << line;
  EXPECT_EQ(pgid, (*started)->pid());
  EXPECT_NE(pgid, getpgrp());
  ASSERT_OK((*started)->Wait(absl::Seconds(30)));
}

TEST(ChildProcessTest, TerminateStopsTheWholeGroupWithSigterm) {
  // The shell starts a grandchild in the same group; Terminate must leave neither behind. As
  // a subreaper we inherit the orphaned grandchild and can wait for it.
  ASSERT_EQ(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  ChildProcessOptions options = Shell("sleep 60 & echo $!; wait");
  options.stdout_mode = StdioMode::kPipe;
  absl::StatusOr<std::unique_ptr<ChildProcess>> child = ChildProcess::Start(options);
  ASSERT_OK(child);
  int grandchild = 0;
  ASSERT_TRUE(absl::SimpleAtoi(ReadLine((*child)->stdout_fd()), &grandchild));

  ExitStatus status = (*child)->Terminate(absl::Seconds(10));
  EXPECT_TRUE(status.signaled) << status.ToString();
  EXPECT_EQ(status.signal, SIGTERM) << status.ToString();
  // Had the grandchild survived, this would take the full 60 s and report a clean exit.
  int wait_status = 0;
  ASSERT_EQ(waitpid(grandchild, &wait_status, 0), grandchild);
  prctl(PR_SET_CHILD_SUBREAPER, 0);
  EXPECT_TRUE(WIFSIGNALED(wait_status)) << "grandchild exited on its own: " << wait_status;
}

TEST(ChildProcessTest, TerminateEscalatesToSigkillAfterGrace) {
  ChildProcessOptions options = Shell("trap '' TERM; echo ready; while :; do :; done");
  options.stdout_mode = StdioMode::kPipe;
  absl::StatusOr<std::unique_ptr<ChildProcess>> child = ChildProcess::Start(options);
  ASSERT_OK(child);
  ASSERT_EQ(ReadLine((*child)->stdout_fd()), "ready");
  absl::Time start = absl::Now();
  ExitStatus status = (*child)->Terminate(absl::Milliseconds(300));
  absl::Duration took = absl::Now() - start;
  EXPECT_TRUE(status.signaled) << status.ToString();
  EXPECT_EQ(status.signal, SIGKILL) << status.ToString();
  EXPECT_GE(took, absl::Milliseconds(300));
  EXPECT_LT(took, absl::Seconds(10));
  // Terminate again: the recorded status, no signal to a reaped pid.
  EXPECT_EQ((*child)->Terminate(absl::Seconds(1)).signal, SIGKILL);
}

TEST(ChildProcessTest, ChildGetsDefaultSignalsEvenIfParentBlocksOrIgnoresThem) {
  // A server blocks SIGTERM for sigwait and gRPC ignores SIGPIPE; the child must not inherit
  // either, or Terminate() would always need SIGKILL.
  sigset_t term;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  sigset_t saved;
  pthread_sigmask(SIG_BLOCK, &term, &saved);
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  struct sigaction saved_pipe {};
  sigaction(SIGPIPE, &ignore, &saved_pipe);

  ChildProcessOptions options =
      Shell("grep -E '^Sig(Blk|Ign):' /proc/self/status; echo ready; exec sleep 60");
  options.stdout_mode = StdioMode::kPipe;
  absl::StatusOr<std::unique_ptr<ChildProcess>> child = ChildProcess::Start(options);

  pthread_sigmask(SIG_SETMASK, &saved, nullptr);
  sigaction(SIGPIPE, &saved_pipe, nullptr);
  ASSERT_OK(child);
  EXPECT_EQ(ReadLine((*child)->stdout_fd()), "SigBlk:\t0000000000000000");
  EXPECT_EQ(ReadLine((*child)->stdout_fd()), "SigIgn:\t0000000000000000");
  ASSERT_EQ(ReadLine((*child)->stdout_fd()), "ready");
  ExitStatus status = (*child)->Terminate(absl::Seconds(10));
  EXPECT_EQ(status.signal, SIGTERM) << status.ToString();
}

TEST(ChildProcessTest, DestructorKillsAndReapsARunningChild) {
  pid_t pid = 0;
  {
    absl::StatusOr<std::unique_ptr<ChildProcess>> child =
        ChildProcess::Start(Shell("exec sleep 60"));
    ASSERT_OK(child);
    pid = (*child)->pid();
    ASSERT_TRUE(ProcessExists(pid));
  }
  // Reaped by the destructor: the pid is gone (not even a zombie).
  EXPECT_EQ(kill(pid, 0), -1);
  EXPECT_EQ(errno, ESRCH);
}

TEST(ChildProcessTest, RunToCompletionTimesOutAndKills) {
  absl::StatusOr<CompletedProcess> result =
      ChildProcess::RunToCompletion(Shell("echo partial; exec sleep 60"), absl::Milliseconds(300));
  EXPECT_THAT(result.status(), StatusIs(absl::StatusCode::kDeadlineExceeded, HasSubstr("partial")));
}

TEST(ChildProcessTest, WaitFromOneThreadWhileAnotherSignals) {
  absl::StatusOr<std::unique_ptr<ChildProcess>> child = ChildProcess::Start(Shell("exec sleep 60"));
  ASSERT_OK(child);
  absl::StatusOr<ExitStatus> waited = absl::UnknownError("not set");
  std::thread waiter([&] { waited = (*child)->Wait(absl::Seconds(30)); });
  // Signal() must not be blocked by the waiting thread.
  ASSERT_OK((*child)->Signal(SIGTERM));
  waiter.join();
  ASSERT_OK(waited);
  EXPECT_EQ(waited->signal, SIGTERM);
}

TEST(ChildProcessTest, ParentDeathSignalIsTiedToTheStartingThread) {
  // Documented Linux behaviour: the signal fires when the thread that forked exits.
  std::unique_ptr<ChildProcess> child;
  std::thread starter([&] {
    ChildProcessOptions options = Shell("exec sleep 60");
    options.parent_death_signal = SIGKILL;
    absl::StatusOr<std::unique_ptr<ChildProcess>> started = ChildProcess::Start(options);
    if (started.ok()) child = std::move(*started);
  });
  starter.join();
  ASSERT_NE(child, nullptr);
  absl::StatusOr<ExitStatus> status = child->Wait(absl::Seconds(30));
  ASSERT_OK(status);
  EXPECT_EQ(status->signal, SIGKILL) << status->ToString();
}

TEST(ChildProcessTest, ParentDeathSignalKillsChildWhenParentProcessIsKilled) {
  // We become a subreaper so that the orphaned grandchild is reparented to us and can be
  // waited for deterministically.
  ASSERT_EQ(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  int pid_pipe[2];
  ASSERT_EQ(pipe(pid_pipe), 0);
  pid_t middle = fork();
  ASSERT_GE(middle, 0);
  if (middle == 0) {
    ChildProcessOptions options = Shell("exec sleep 60");
    options.parent_death_signal = SIGKILL;
    absl::StatusOr<std::unique_ptr<ChildProcess>> started = ChildProcess::Start(options);
    pid_t grandchild = started.ok() ? (*started)->pid() : -1;
    if (write(pid_pipe[1], &grandchild, sizeof(grandchild)) != sizeof(grandchild)) _exit(2);
    pause();
    _exit(0);
  }
  close(pid_pipe[1]);
  pid_t grandchild = -1;
  ASSERT_EQ(read(pid_pipe[0], &grandchild, sizeof(grandchild)),
            static_cast<ssize_t>(sizeof(grandchild)));
  close(pid_pipe[0]);
  ASSERT_GT(grandchild, 0);

  kill(middle, SIGKILL);
  int wait_status = 0;
  ASSERT_EQ(waitpid(middle, &wait_status, 0), middle);
  ASSERT_EQ(waitpid(grandchild, &wait_status, 0), grandchild);
  prctl(PR_SET_CHILD_SUBREAPER, 0);
  EXPECT_TRUE(WIFSIGNALED(wait_status));
  EXPECT_EQ(WTERMSIG(wait_status), SIGKILL);
}

}  // namespace
}  // namespace tuneledger
