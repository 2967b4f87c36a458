# Fails when the README's quickstart block and examples/quickstart.cpp differ.
file(READ ${README} readme)
file(READ ${EXAMPLE} example)
string(REGEX MATCH "<!-- quickstart:begin -->\n```cpp\n(.*)```\n<!-- quickstart:end -->" _ "${readme}")
if(NOT CMAKE_MATCH_1 STREQUAL example)
  message(FATAL_ERROR "README.md's quickstart block differs from examples/quickstart.cpp")
endif()
message(STATUS "README quickstart matches examples/quickstart.cpp")
