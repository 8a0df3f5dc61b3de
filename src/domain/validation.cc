#include "domain/validation.h"

#include <algorithm>
#include <string>

namespace orderflow::domain {
namespace {

bool is_id_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
         c == ':' || c == '-';
}

bool is_hex_digit(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

Error invalid(std::string_view field, std::string_view rule) {
  return make_error(Errc::validation_failed, std::string(field) + " " + std::string(rule));
}

}  // namespace

bool is_valid_id(std::string_view id) {
  return !id.empty() && id.size() <= 64 && std::all_of(id.begin(), id.end(), is_id_char);
}

bool is_uuid(std::string_view s) {
  if (s.size() != 36) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    bool dash_place = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash_place ? s[i] != '-' : !is_hex_digit(s[i])) return false;
  }
  return true;
}

std::optional<Error> check_id(std::string_view field, std::string_view id) {
  if (is_valid_id(id)) return std::nullopt;
  return invalid(field, "must be 1-64 characters of [A-Za-z0-9_.:-]");
}

std::optional<Error> check_uuid(std::string_view field, std::string_view id) {
  if (is_uuid(id)) return std::nullopt;
  return invalid(field, "must be a UUID");
}

std::optional<Error> check_not_empty(std::string_view field, std::string_view value) {
  if (!value.empty()) return std::nullopt;
  return invalid(field, "must not be empty");
}

std::optional<Error> check_at_least(std::string_view field, std::int64_t value, std::int64_t min) {
  if (value >= min) return std::nullopt;
  return invalid(field, min == 0 ? "must not be negative" : "must be at least " + std::to_string(min));
}

}  // namespace orderflow::domain
