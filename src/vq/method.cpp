#include "vimvq/vq/method.h"

#include "vimvq/util/error.h"

namespace vimvq::vq {

Method parse_method(const std::string& text, const std::string& what) {
  for (Method m : {Method::kVimvq, Method::kVq4dit, Method::kKmeans, Method::kRtn}) {
    if (text == method_name(m)) return m;
  }
  throw Error(what + " '" + text + "': use vimvq, vq4dit, kmeans or rtn");
}

const char* method_name(Method method) {
  switch (method) {
    case Method::kVimvq:
      return "vimvq";
    case Method::kVq4dit:
      return "vq4dit";
    case Method::kKmeans:
      return "kmeans";
    case Method::kRtn:
      return "rtn";
  }
  return "?";
}

bool is_calibrated(Method method) { return method == Method::kVimvq || method == Method::kVq4dit; }

}  // namespace vimvq::vq
