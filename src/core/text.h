// Small text helpers.
#pragma once

#include <string>
#include <string_view>

namespace orderflow {

// ASCII lower case (order ids are UUIDs compared in lower case).
inline std::string ascii_lower(std::string_view in) {
  std::string s(in);
  for (auto& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

}  // namespace orderflow
