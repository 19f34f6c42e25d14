#!/usr/bin/python3
"""The rooms are link-time facts (README.md "Source layout"), checked on the built binaries and the
sources:

  (a) tuneledger-train and tuneledger-pretrain need no gRPC, protobuf, Abseil, SQLite or
      prometheus-cpp library (readelf -d: their NEEDED entries);
  (b) tuneledger-server, tuneledger-worker and tunectl need no LibTorch (libtorch*, libc10*);
  (c) no source under worker/trainer/ includes Abseil, gRPC or protobuf headers (absl/..., grpc...,
      google/protobuf/..., *.pb.h), nor does a project header those sources include;
  (d) no source under server/core/ includes gRPC (*.grpc.pb.h, <grpcpp/...>), nor does a project
      header those sources include: the scheduler core links no gRPC;
  (e) no source under lm/ (shared by the server and the trainer) includes LibTorch, Abseil, gRPC,
      protobuf or anything of worker/, server/ or client/;
  (f) no source under server/ or client/ includes anything of worker/: what they share with the
      trainer is lm/, base/ and proto/.

Every failure names the file (binary or source line, with the include chain that reached it)
and the offending entry. The self-tests feed each checker a violation, so that a checker that
can no longer fail is a failure too.

Run by ctest (rooms.link_rooms, label unit) on the binaries of a full build: ctest does not build
them. Standard library only, /usr/bin/python3:

  link_rooms_test.py --source-dir SRC --trainer-binary BIN... --service-binary BIN...
"""

import argparse
import collections
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

# Library name prefixes (as in NEEDED: "libabsl_strings.so.20220623") each room must not need.
TRAINER_FORBIDDEN_LIBS = ("libgrpc", "libgpr", "libupb", "libprotobuf", "libabsl", "libsqlite",
                          "libprometheus")
SERVICE_FORBIDDEN_LIBS = ("libtorch", "libc10")

SOURCE_SUFFIXES = (".cc", ".h", ".cpp", ".hpp", ".cu", ".cuh")
INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')
# Where the project's quoted includes resolve (the include directories of its targets).
INCLUDE_ROOTS = ("", "proto")


def trainer_forbidden_include(header):
    if header.startswith(("absl/", "grpc", "google/protobuf/")) or header.endswith(".pb.h"):
        return "the trainer links no gRPC, protobuf or Abseil"
    return None


def core_forbidden_include(header):
    if header.endswith(".grpc.pb.h") or header.startswith(("grpcpp/", "grpc++/", "grpc/")):
        return "the scheduler core links no gRPC"
    return None


def lm_forbidden_include(header):
    if header.startswith(("torch/", "ATen/", "c10/")):
        return "lm/ is shared with the server, which links no LibTorch"
    if trainer_forbidden_include(header):
        return "lm/ is shared with the trainer, which links no gRPC, protobuf or Abseil"
    if header.startswith(("worker/", "server/", "client/")):
        return "lm/ depends on no service folder"
    return None


def service_forbidden_include(header):
    if header.startswith("worker/"):
        return "the server and tunectl share lm/, base/ and proto/ with the worker, nothing else"
    return None


def needed_libraries(binary):
    """The NEEDED entries of `binary`'s dynamic section (readelf -d)."""
    readelf = shutil.which("readelf")
    if readelf is None:
        raise AssertionError("readelf not found: install binutils (deploy/install-deps.sh)")
    result = subprocess.run([readelf, "-d", binary], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise AssertionError(f"readelf -d {binary} failed: {result.stderr.strip()}")
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", result.stdout)


def needed_problems(binary, forbidden, why):
    """One message per NEEDED entry of `binary` that starts with a `forbidden` prefix."""
    if not os.path.isfile(binary):
        return [f"{binary}: not found (the test runs on a full build: cmake --build first)"]
    needed = needed_libraries(binary)
    if not needed:
        return [f"{binary}: readelf -d lists no NEEDED entry (not a dynamic executable?)"]
    return [f"{binary}: NEEDED {library} ({why})" for library in needed
            if library.startswith(forbidden)]


def source_files(folder):
    return sorted(path for path in pathlib.Path(folder).rglob("*")
                  if path.is_file() and path.suffix in SOURCE_SUFFIXES)


def resolve_project_include(source_dir, header):
    for root in INCLUDE_ROOTS:
        candidate = pathlib.Path(source_dir, root, header)
        if candidate.is_file():
            return candidate
    return None  # a generated header (*.pb.h) or a library's


def include_problems(source_dir, folder, forbidden):
    """One message per #include in the sources under `folder`, or in a project header they
    include (followed recursively), that `forbidden(header)` rejects."""
    source_dir = pathlib.Path(source_dir).resolve()
    problems = []
    seen = set()
    # (file, chain of files that included it); breadth first, so that a file of `folder` is
    # reported as itself, not through another file that includes it.
    pending = collections.deque((path.resolve(), ()) for path in source_files(folder))
    while pending:
        path, chain = pending.popleft()
        if path in seen:
            continue
        seen.add(path)
        shown = os.path.relpath(path, source_dir)
        with open(path, encoding="utf-8", errors="replace") as f:
            for number, line in enumerate(f, start=1):
                match = INCLUDE.match(line)
                if not match:
                    continue
                delimiter, header = match.groups()
                why = forbidden(header)
                if why:
                    via = "".join(f"{step} -> " for step in chain)
                    spelled = f"<{header}>" if delimiter == "<" else f'"{header}"'
                    problems.append(f"{via}{shown}:{number}: #include {spelled} ({why})")
                if delimiter == '"':
                    included = resolve_project_include(source_dir, header)
                    if included is not None:
                        pending.append((included.resolve(), chain + (shown,)))
    return problems


class LinkRoomsTest(unittest.TestCase):
    source_dir = None
    trainer_binaries = []
    service_binaries = []

    def assertNoProblems(self, problems):
        if problems:
            self.fail(f"{len(problems)} violation(s):\n  " + "\n  ".join(problems))

    def test_trainer_binaries_need_no_grpc_protobuf_abseil_sqlite_or_prometheus(self):
        self.assertTrue(self.trainer_binaries, "no --trainer-binary given")
        problems = []
        for binary in self.trainer_binaries:
            problems += needed_problems(binary, TRAINER_FORBIDDEN_LIBS,
                                        "the trainer links LibTorch and header-only libraries only")
        self.assertNoProblems(problems)

    def test_server_worker_and_tunectl_need_no_libtorch(self):
        if not self.service_binaries:
            self.skipTest("a trainer-only build has no server, worker agent or tunectl")
        problems = []
        for binary in self.service_binaries:
            problems += needed_problems(binary, SERVICE_FORBIDDEN_LIBS,
                                        "only tuneledger-train links LibTorch")
        self.assertNoProblems(problems)

    def test_trainer_sources_include_no_abseil_grpc_or_protobuf(self):
        folder = pathlib.Path(self.source_dir, "worker", "trainer")
        self.assertGreater(len(source_files(folder)), 20, f"no trainer sources under {folder}")
        problems = include_problems(self.source_dir, folder, trainer_forbidden_include)
        self.assertNoProblems(problems)

    def test_scheduler_core_sources_include_no_grpc(self):
        folder = pathlib.Path(self.source_dir, "server", "core")
        self.assertGreater(len(source_files(folder)), 5, f"no core sources under {folder}")
        problems = include_problems(self.source_dir, folder, core_forbidden_include)
        self.assertNoProblems(problems)

    def test_lm_sources_include_no_libtorch_rpc_or_service_folder(self):
        folder = pathlib.Path(self.source_dir, "lm")
        self.assertGreater(len(source_files(folder)), 10, f"no sources under {folder}")
        problems = include_problems(self.source_dir, folder, lm_forbidden_include)
        self.assertNoProblems(problems)

    def test_server_and_client_sources_include_nothing_of_worker(self):
        problems = []
        for name in ("server", "client"):
            folder = pathlib.Path(self.source_dir, name)
            self.assertGreater(len(source_files(folder)), 5, f"no sources under {folder}")
            problems += include_problems(self.source_dir, folder, service_forbidden_include)
        self.assertNoProblems(problems)


class CheckersCanFailTest(unittest.TestCase):
    """Each checker, given a violation, reports it with the file and the entry."""

    def test_include_checker_reports_file_line_and_header(self):
        with tempfile.TemporaryDirectory(prefix="link-rooms-") as root:
            folder = pathlib.Path(root, "worker", "trainer")
            folder.mkdir(parents=True)
            (folder / "clean.h").write_text("#include <vector>\n")
            (folder / "bad.cc").write_text(
                '#include "worker/trainer/clean.h"\n#include "absl/strings/str_cat.h"\n'
                "#  include <grpcpp/grpcpp.h>\n")
            # Reached only through an include chain from the trainer's folder.
            pathlib.Path(root, "proto", "v1").mkdir(parents=True)
            pathlib.Path(root, "proto", "v1", "shared.h").write_text(
                '#include "v1/jobs.pb.h"\n')
            (folder / "uses_shared.cc").write_text('#include "v1/shared.h"\n')
            problems = include_problems(root, folder, trainer_forbidden_include)
        self.assertEqual(sorted(problems), sorted([
            'worker/trainer/bad.cc:2: #include "absl/strings/str_cat.h" '
            "(the trainer links no gRPC, protobuf or Abseil)",
            "worker/trainer/bad.cc:3: #include <grpcpp/grpcpp.h> "
            "(the trainer links no gRPC, protobuf or Abseil)",
            'worker/trainer/uses_shared.cc -> proto/v1/shared.h:1: #include "v1/jobs.pb.h" '
            "(the trainer links no gRPC, protobuf or Abseil)",
        ]))

    def test_core_include_rule_allows_messages_but_not_services(self):
        self.assertIsNone(core_forbidden_include("tuneledger/v1/jobs.pb.h"))
        self.assertIsNotNone(core_forbidden_include("tuneledger/v1/jobs.grpc.pb.h"))
        self.assertIsNotNone(core_forbidden_include("grpcpp/server.h"))

    def test_lm_rule_refuses_libtorch_rpc_and_service_folders(self):
        self.assertIsNone(lm_forbidden_include("lm/text/tokenizer.h"))
        self.assertIsNone(lm_forbidden_include("nlohmann/json.hpp"))
        for header in ("torch/torch.h", "c10/core/Device.h", "absl/strings/str_cat.h",
                       "tuneledger/v1/jobs.pb.h", "worker/trainer/recipe/batcher.h",
                       "server/core/job_store.h"):
            self.assertIsNotNone(lm_forbidden_include(header), header)

    def test_service_rule_refuses_worker_headers(self):
        self.assertIsNone(service_forbidden_include("lm/data/jsonl_dataset.h"))
        self.assertIsNotNone(service_forbidden_include("worker/trainer/recipe/batcher.h"))

    def test_needed_checker_reports_the_other_rooms_libraries(self):
        # The rooms swapped: the server's binary under the trainer's rule and the other way round.
        if not LinkRoomsTest.service_binaries or not LinkRoomsTest.trainer_binaries:
            self.skipTest("needs a trainer and a service binary")
        server = LinkRoomsTest.service_binaries[0]
        trainer = LinkRoomsTest.trainer_binaries[0]
        as_trainer = needed_problems(server, TRAINER_FORBIDDEN_LIBS, "x")
        as_service = needed_problems(trainer, SERVICE_FORBIDDEN_LIBS, "x")
        self.assertTrue(any(f"{server}: NEEDED libgrpc" in p for p in as_trainer), as_trainer)
        self.assertTrue(any(f"{trainer}: NEEDED libtorch" in p or f"{trainer}: NEEDED libc10" in p
                            for p in as_service), as_service)

    def test_missing_binary_is_a_problem(self):
        self.assertEqual(needed_problems("/nonexistent/tuneledger-train", ("libabsl",), "x"),
                         ["/nonexistent/tuneledger-train: not found "
                          "(the test runs on a full build: cmake --build first)"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source-dir", required=True)
    parser.add_argument("--trainer-binary", action="append", default=[])
    parser.add_argument("--service-binary", action="append", default=[])
    args, rest = parser.parse_known_args()
    LinkRoomsTest.source_dir = args.source_dir
    LinkRoomsTest.trainer_binaries = args.trainer_binary
    LinkRoomsTest.service_binaries = args.service_binary
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)


if __name__ == "__main__":
    main()
