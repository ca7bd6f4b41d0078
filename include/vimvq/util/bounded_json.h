// JSON from files vimvq does not trust (packed metadata, model metadata) is parsed with a bound on
// its nesting: no real metadata nests past a handful of levels, and a file nested 100,000 deep
// must be refused with one line, not accepted or left to exhaust a stack later.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace vimvq {

inline constexpr int kMaxJsonDepth = 64;

// nlohmann::json::parse, or std::nullopt when the text nests deeper than max_depth. Malformed
// text throws nlohmann::json::parse_error, as parse does.
std::optional<nlohmann::json> parse_json_within_depth(const std::string& text, int max_depth = kMaxJsonDepth);

}  // namespace vimvq
