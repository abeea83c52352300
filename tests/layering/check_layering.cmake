# Layering check: every `#include "FOLDER/..."` under SRC must name its own
# folder or a layer that folder depends on, directly or transitively.
#
# The allowed edges are not written here: they are read from the same lines
# that build the libraries, `rv_layer(NAME DEPS rv_a rv_b ...)` in
# SRC/CMakeLists.txt, plus `target_link_libraries(reasonvec PRIVATE ...)` in
# SRC/cli/CMakeLists.txt for the command-line front end. Adding an upward
# include therefore fails here until the DEPS list says so, and a DEPS list
# with a cycle fails too.
#
# Usage: cmake -DSRC=path/to/src -P check_layering.cmake
cmake_minimum_required(VERSION 3.25)
if(NOT SRC)
  message(FATAL_ERROR "usage: cmake -DSRC=DIR -P check_layering.cmake")
endif()
get_filename_component(SRC "${SRC}" ABSOLUTE)

set(layers "")
macro(add_edges layer text)
  string(REGEX MATCHALL "rv_[a-z_]+" _deps "${text}")
  foreach(d ${_deps})
    string(REGEX REPLACE "^rv_" "" d "${d}")
    list(APPEND deps_${layer} ${d})
  endforeach()
  list(APPEND layers ${layer})
endmacro()

file(STRINGS "${SRC}/CMakeLists.txt" lines REGEX "^[ \t]*rv_layer\\(")
foreach(line ${lines})
  if(NOT line MATCHES "rv_layer\\(([a-z_]+)(.*)\\)")
    message(FATAL_ERROR "${SRC}/CMakeLists.txt: cannot read layer line: ${line}")
  endif()
  add_edges(${CMAKE_MATCH_1} "${CMAKE_MATCH_2}")
endforeach()
if(EXISTS "${SRC}/cli/CMakeLists.txt")
  file(STRINGS "${SRC}/cli/CMakeLists.txt" lines REGEX "target_link_libraries\\(reasonvec")
  foreach(line ${lines})
    add_edges(cli "${line}")
  endforeach()
endif()
if(NOT layers)
  message(FATAL_ERROR "${SRC}/CMakeLists.txt: no rv_layer(...) lines found")
endif()

# Transitive closure by depth-first search; a layer met again on its own
# path is a cycle.
function(closure layer path out)
  if(layer IN_LIST path)
    message(FATAL_ERROR "layer dependency cycle: ${path};${layer}")
  endif()
  set(acc ${layer})
  foreach(d ${deps_${layer}})
    closure(${d} "${path};${layer}" sub)
    list(APPEND acc ${sub})
  endforeach()
  list(REMOVE_DUPLICATES acc)
  set(${out} ${acc} PARENT_SCOPE)
endfunction()

# Violations are printed one a line (NOTICE does not re-wrap them), then one
# fatal error ends the run with a non-zero exit.
set(violations 0)
set(checked 0)
file(GLOB_RECURSE files RELATIVE "${SRC}" "${SRC}/*.h" "${SRC}/*.cpp")
foreach(f ${files})
  string(REGEX REPLACE "/.*" "" folder "${f}")
  if(folder STREQUAL f)
    continue()  # a file directly under SRC belongs to no layer
  endif()
  if(NOT folder IN_LIST layers)
    message(NOTICE "${SRC}/${f}: folder '${folder}' has no rv_layer(...) line")
    math(EXPR violations "${violations} + 1")
    continue()
  endif()
  if(NOT DEFINED allowed_${folder})
    closure(${folder} "" allowed_${folder})
  endif()
  file(STRINGS "${SRC}/${f}" incs REGEX "^[ \t]*#[ \t]*include[ \t]*\"[a-z_]+/")
  foreach(inc ${incs})
    string(REGEX REPLACE "^[^\"]*\"([a-z_]+)/.*" "\\1" target "${inc}")
    math(EXPR checked "${checked} + 1")
    if(NOT target IN_LIST allowed_${folder})
      message(NOTICE "${SRC}/${f}: layer '${folder}' includes '${target}/', which is not among its "
                     "dependencies (${allowed_${folder}}); fix the include or the DEPS list")
      math(EXPR violations "${violations} + 1")
    endif()
  endforeach()
endforeach()
if(violations GREATER 0)
  message(FATAL_ERROR "${violations} layering violation(s)")
endif()
message(STATUS "layering: ${checked} includes in ${SRC} respect the DEPS lists")
