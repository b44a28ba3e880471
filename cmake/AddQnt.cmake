#===- AddQnt.cmake - Helpers for quant-mlir targets ----------------------===#
#
# Thin wrappers in the spirit of CIRCT's AddCIRCT.cmake: every library is
# named Qnt*, IR libraries link the MLIR dylib, and unit tests register with
# CTest through one function.
#
#===----------------------------------------------------------------------===#

# add_qnt_library(name SRCS... [DEPENDS tgts...] [LINK_LIBS libs...] [MLIR])
# MLIR: the library uses MLIR/LLVM and links libMLIR.so and libLLVM.so.
function(add_qnt_library name)
  cmake_parse_arguments(ARG "MLIR" "" "DEPENDS;LINK_LIBS" ${ARGN})
  add_library(${name} STATIC ${ARG_UNPARSED_ARGUMENTS})
  set_target_properties(${name} PROPERTIES POSITION_INDEPENDENT_CODE ON)
  if(ARG_DEPENDS)
    add_dependencies(${name} ${ARG_DEPENDS})
  endif()
  target_link_libraries(${name} PUBLIC ${ARG_LINK_LIBS})
  if(ARG_MLIR)
    target_link_libraries(${name} PUBLIC MLIR LLVM)
  endif()
  set_property(GLOBAL APPEND PROPERTY QNT_ALL_LIBS ${name})
endfunction()

# add_qnt_unittest(name SRCS... [LINK_LIBS libs...])
function(add_qnt_unittest name)
  cmake_parse_arguments(ARG "" "" "LINK_LIBS" ${ARGN})
  add_executable(${name} ${ARG_UNPARSED_ARGUMENTS})
  set_target_properties(${name} PROPERTIES
    RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/unittests)
  target_link_libraries(${name} PRIVATE ${ARG_LINK_LIBS} GTest::gtest
                        GTest::gtest_main)
  add_test(NAME unit/${name} COMMAND ${name} --gtest_brief=1
           WORKING_DIRECTORY ${PROJECT_BINARY_DIR})
  set_property(GLOBAL APPEND PROPERTY QNT_UNITTESTS ${name})
endfunction()
