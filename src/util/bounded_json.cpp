#include "vimvq/util/bounded_json.h"

namespace vimvq {

std::optional<nlohmann::json> parse_json_within_depth(const std::string& text, int max_depth) {
  struct TooDeep {};
  try {
    return nlohmann::json::parse(text,
                                 [max_depth](int depth, nlohmann::json::parse_event_t, nlohmann::json&) {
                                   if (depth > max_depth)
                                     throw TooDeep{};  // stops the parse at the first level too deep
                                   return true;
                                 });
  } catch (const TooDeep&) {
    return std::nullopt;
  }
}

}  // namespace vimvq
