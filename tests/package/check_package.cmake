# ctest cpu.package_consumer: installs the build tree's "library" component into a fresh prefix,
# builds the consumer project beside this script against it (finding CUDA as a user's project
# would: nvcc on PATH, /usr/local/cuda or CUDAToolkit_ROOT), and runs it.
# Inputs (-D): BUILD_DIR, CONFIG, WORK_DIR, SOURCE_DIR (this folder), GENERATOR, MAKE_PROGRAM,
# CXX_COMPILER, VERSION (the tree's project version).
foreach(var BUILD_DIR CONFIG WORK_DIR SOURCE_DIR GENERATOR MAKE_PROGRAM CXX_COMPILER VERSION)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "check_package.cmake: -D${var}=... is required")
  endif()
endforeach()
file(REMOVE_RECURSE "${WORK_DIR}")
function(step)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  message(STATUS "${out}")
endfunction()
set(config_args)
if(CONFIG)
  set(config_args --config "${CONFIG}")
endif()
step(${CMAKE_COMMAND} --install "${BUILD_DIR}" --prefix "${WORK_DIR}/prefix" --component library ${config_args})
step(${CMAKE_COMMAND} -S "${SOURCE_DIR}" -B "${WORK_DIR}/build" -G "${GENERATOR}"
     "-DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM}" "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}"
     "-DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix" "-DEPCOMM_VERSION=${VERSION}")
step(${CMAKE_COMMAND} --build "${WORK_DIR}/build" ${config_args})
step("${WORK_DIR}/build/consumer")
