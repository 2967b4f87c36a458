// JSON texts that are hard on a parser building sorted objects: members
// whose keys come in descending order, so that inserting them one by one
// moves every member already there (O(n^2) for Json::parse).
#pragma once

#include <string>

namespace test {

// `"k<1000000 + i>": <first_value + i>` for i from n - 1 down to 0, comma
// separated, without braces (so that tests can wrap or repeat them).
inline std::string descending_members(int n, long long first_value = 0) {
  std::string members;
  for (int i = n - 1; i >= 0; --i) {
    members += "\"k" + std::to_string(1000000 + i) + "\":" + std::to_string(first_value + i);
    if (i) members += ",";
  }
  return members;
}

inline std::string descending_object(int n) {
  return "{" + descending_members(n) + "}";
}

}  // namespace test
