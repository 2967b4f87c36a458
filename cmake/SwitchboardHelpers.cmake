# Warnings for the project's own code (not for third-party headers).
function(switchboard_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wno-unused-parameter)
  if(SWITCHBOARD_WARNINGS_AS_ERRORS)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()

if(SWITCHBOARD_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
endif()

# Declares a plugin: a MODULE library with hidden visibility whose only
# export is the entry symbol, placed in lib/switchboard next to the binaries.
#   switchboard_plugin(NAME name SOURCES ... [LIBRARIES ...] [OUTPUT_DIR dir])
function(switchboard_plugin)
  cmake_parse_arguments(P "" "NAME;OUTPUT_DIR" "SOURCES;LIBRARIES" ${ARGN})
  set(target switchboard_plugin_${P_NAME})
  add_library(${target} MODULE ${P_SOURCES})
  target_link_libraries(${target} PRIVATE switchboard::core ${P_LIBRARIES})
  if(NOT P_OUTPUT_DIR)
    set(P_OUTPUT_DIR ${PROJECT_BINARY_DIR}/${SWITCHBOARD_PLUGIN_DIR_NAME})
  endif()
  set_target_properties(${target} PROPERTIES
    PREFIX "libswitchboard-"
    OUTPUT_NAME "${P_NAME}"
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON
    LIBRARY_OUTPUT_DIRECTORY ${P_OUTPUT_DIR})
  switchboard_warnings(${target})
  install(TARGETS ${target} LIBRARY DESTINATION ${SWITCHBOARD_PLUGIN_DIR_NAME})
endfunction()
