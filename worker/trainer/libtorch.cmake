# LibTorch for the trainer: one version for every build, the pinned `torch` wheel from PyPI
# (deploy/requirements-torch.txt) that deploy/install-deps.sh installs into <repo>/.venv. The
# server, the worker agent and tunectl never link it.
#
# Which torch package, first match wins:
#   -DTUNELEDGER_TORCH_DIR=DIR   the package folder itself (DIR/include, DIR/lib/libtorch_cpu.so)
#   -DTUNELEDGER_PYTHON=PY       the torch package that Python imports (found without importing it)
#   <repo>/.venv/bin/python3     the default: what deploy/install-deps.sh installed
#
# CUDA (TUNELEDGER_CUDA=AUTO|ON|OFF): AUTO turns it on wherever nvcc exists (PATH or
# /usr/local/cuda) and the wheel carries LibTorch's CUDA libraries. ON links libtorch_cuda and
# libc10_cuda, enables the CUDA language for the trainer's own kernels and defines
# TUNELEDGER_WITH_CUDA=1; the trainer still runs on CPU when no GPU is present. OFF links the
# CPU libraries only (no CUDA device at run time).
#
# We import the wheel's libraries ourselves instead of through its TorchConfig.cmake: that file
# insists on a CUDA toolkit for a CUDA wheel, adds MKL search paths that do not exist, and links
# the system CUDA runtime and NCCL in place of the wheel's own.
#
# The wheel's libtorch_cpu.so exports its own copies of libstdc++ symbols (std::filesystem,
# seen: remove_all jumps to address 0 when called through it). Every target that links
# tuneledger::torch records libstdc++.so first among its needed libraries, so the dynamic linker
# finds the C++ standard library in libstdc++ before any LibTorch library
# (tests/trainer/recipe_symbol_binding_test.cc checks every binding).
#
# Defines: tuneledger::torch, TUNELEDGER_TORCH_VERSION, TUNELEDGER_WITH_CUDA (ON/OFF).

set(TUNELEDGER_TORCH_DIR "" CACHE PATH "torch package folder (holds include/ and lib/)")
# TUNELEDGER_PYTHON is a cache variable of the top-level CMakeLists.txt.
set(TUNELEDGER_CUDA AUTO CACHE STRING "Build the trainer with CUDA: AUTO, ON or OFF")
set_property(CACHE TUNELEDGER_CUDA PROPERTY STRINGS AUTO ON OFF)

set(_torch_dir "${TUNELEDGER_TORCH_DIR}")
if(NOT _torch_dir)
  if(NOT EXISTS "${TUNELEDGER_PYTHON}")
    message(FATAL_ERROR
      "LibTorch: ${TUNELEDGER_PYTHON} does not exist. Run ./deploy/install-deps.sh (it installs "
      "the pinned torch wheel into .venv), or pass -DTUNELEDGER_PYTHON=<python with torch> or "
      "-DTUNELEDGER_TORCH_DIR=<torch package folder>.")
  endif()
  execute_process(
    COMMAND "${TUNELEDGER_PYTHON}" -c
            "import importlib.util as u; s = u.find_spec('torch'); print(s.submodule_search_locations[0] if s else '')"
    OUTPUT_VARIABLE _torch_dir OUTPUT_STRIP_TRAILING_WHITESPACE
    RESULT_VARIABLE _torch_find_rc)
  if(NOT _torch_find_rc EQUAL 0 OR NOT _torch_dir)
    message(FATAL_ERROR "LibTorch: ${TUNELEDGER_PYTHON} has no torch package "
                        "(run ./deploy/install-deps.sh)")
  endif()
endif()
if(NOT EXISTS "${_torch_dir}/lib/libtorch_cpu.so" OR NOT EXISTS "${_torch_dir}/include/torch")
  message(FATAL_ERROR "LibTorch: ${_torch_dir} holds no LibTorch (lib/libtorch_cpu.so, include/torch)")
endif()

# The version macros moved to torch/headeronly/version.h in later 2.x releases.
set(_torch_version_lines "")
foreach(_header "include/torch/headeronly/version.h" "include/torch/csrc/api/include/torch/version.h")
  if(EXISTS "${_torch_dir}/${_header}")
    file(STRINGS "${_torch_dir}/${_header}" _lines REGEX "#define TORCH_VERSION_(MAJOR|MINOR|PATCH) ")
    list(APPEND _torch_version_lines ${_lines})
  endif()
endforeach()
foreach(_line IN LISTS _torch_version_lines)
  string(REGEX MATCH "TORCH_VERSION_([A-Z]+) ([0-9]+)" _ "${_line}")
  set(_torch_${CMAKE_MATCH_1} ${CMAKE_MATCH_2})
endforeach()
set(TUNELEDGER_TORCH_VERSION "${_torch_MAJOR}.${_torch_MINOR}.${_torch_PATCH}")
if(NOT _torch_MAJOR OR _torch_MAJOR LESS 2)
  message(FATAL_ERROR "LibTorch ${TUNELEDGER_TORCH_VERSION} in ${_torch_dir}: the trainer needs 2.x")
endif()

# CUDA: nvcc and the wheel's CUDA libraries.
set(_torch_has_cuda OFF)
if(EXISTS "${_torch_dir}/lib/libtorch_cuda.so" AND EXISTS "${_torch_dir}/lib/libc10_cuda.so")
  set(_torch_has_cuda ON)
endif()
set(TUNELEDGER_WITH_CUDA OFF)
if(NOT TUNELEDGER_CUDA STREQUAL "OFF")
  if(NOT CMAKE_CUDA_COMPILER)
    find_program(TUNELEDGER_NVCC nvcc HINTS /usr/local/cuda/bin)
    if(TUNELEDGER_NVCC)
      set(CMAKE_CUDA_COMPILER "${TUNELEDGER_NVCC}")
    endif()
  endif()
  if(CMAKE_CUDA_COMPILER AND _torch_has_cuda)
    set(TUNELEDGER_WITH_CUDA ON)
  elseif(TUNELEDGER_CUDA STREQUAL "ON")
    message(FATAL_ERROR "TUNELEDGER_CUDA=ON needs nvcc (found: '${CMAKE_CUDA_COMPILER}') and a "
                        "CUDA LibTorch (${_torch_dir}/lib/libtorch_cuda.so)")
  endif()
endif()
if(TUNELEDGER_WITH_CUDA)
  if(NOT CMAKE_CUDA_ARCHITECTURES)
    # A100 (sm_80) and H100/H200 (sm_90); override with -DCMAKE_CUDA_ARCHITECTURES.
    set(CMAKE_CUDA_ARCHITECTURES 80 90)
  endif()
  enable_language(CUDA)
endif()

add_library(tuneledger_torch INTERFACE)
add_library(tuneledger::torch ALIAS tuneledger_torch)
target_include_directories(tuneledger_torch SYSTEM INTERFACE
  "${_torch_dir}/include" "${_torch_dir}/include/torch/csrc/api/include")
# LibTorch 2.x headers need C++20; the wheel's libraries were built with these definitions, and
# headers (c10d) change shape with them.
target_compile_features(tuneledger_torch INTERFACE cxx_std_20)
target_compile_definitions(tuneledger_torch INTERFACE USE_DISTRIBUTED USE_C10D_GLOO)
target_link_options(tuneledger_torch INTERFACE
  "LINKER:--push-state,--no-as-needed,-lstdc++,--pop-state")
set(_torch_libs "${_torch_dir}/lib/libtorch_cpu.so" "${_torch_dir}/lib/libc10.so")
if(TUNELEDGER_WITH_CUDA)
  list(PREPEND _torch_libs "${_torch_dir}/lib/libtorch_cuda.so" "${_torch_dir}/lib/libc10_cuda.so"
       "${_torch_dir}/lib/libtorch.so")
  target_compile_definitions(tuneledger_torch INTERFACE TUNELEDGER_WITH_CUDA=1 USE_C10D_NCCL)
  # libtorch_cuda.so needs the wheel's CUDA libraries (pip's nvidia-* packages beside torch);
  # at run time its own RPATH finds them, at link time -rpath-link does, ahead of any system
  # CUDA or NCCL.
  # What c10d's ProcessGroupNCCL header needs (worker/trainer/recipe/data_parallel.cc only): the
  # wheel's own nccl.h, the one libtorch_cuda.so was built against, and the CUDA runtime headers.
  set(TUNELEDGER_NCCL_INCLUDE_DIRS ${CMAKE_CUDA_TOOLKIT_INCLUDE_DIRECTORIES})
  if(EXISTS "${_torch_dir}/../nvidia/nccl/include/nccl.h")
    list(PREPEND TUNELEDGER_NCCL_INCLUDE_DIRS "${_torch_dir}/../nvidia/nccl/include")
  endif()
  file(GLOB _nvidia_lib_dirs LIST_DIRECTORIES true "${_torch_dir}/../nvidia/*/lib")
  foreach(_dir IN LISTS _nvidia_lib_dirs)
    target_link_options(tuneledger_torch INTERFACE "LINKER:-rpath-link,${_dir}")
  endforeach()
endif()
# --no-as-needed: the CUDA backend registers itself from static constructors; nothing names it.
target_link_libraries(tuneledger_torch INTERFACE "-Wl,--push-state,--no-as-needed" ${_torch_libs}
                      "-Wl,--pop-state")

# tuneledger_cuda_kernels(<name> <sources.cu>...): a static library of the trainer's CUDA kernels
# (quant/, kernels/) with the alias tuneledger::<suffix of name after "tuneledger_">. They take
# raw device pointers (no LibTorch headers in nvcc's way) and link the static CUDA runtime:
# nothing to find at run time beside LibTorch's own libcudart; launches use LibTorch's stream
# handles (a cudaStream_t is the driver's CUstream, the same in both runtimes, on the one
# primary context).
function(tuneledger_cuda_kernels name)
  add_library(${name} STATIC ${ARGN})
  string(REPLACE "tuneledger_" "" _alias "${name}")
  add_library(tuneledger::${_alias} ALIAS ${name})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR})
  set_target_properties(${name} PROPERTIES CUDA_STANDARD 17 CUDA_STANDARD_REQUIRED ON
                        POSITION_INDEPENDENT_CODE ON CUDA_RUNTIME_LIBRARY None)
  find_package(CUDAToolkit REQUIRED)
  target_link_libraries(${name} PUBLIC CUDA::cudart_static)
endfunction()

message(STATUS "LibTorch ${TUNELEDGER_TORCH_VERSION} from ${_torch_dir}; CUDA: ${TUNELEDGER_WITH_CUDA}")
