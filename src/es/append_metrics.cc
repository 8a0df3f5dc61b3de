#include "es/append_metrics.h"

namespace orderflow::es {

AppendMetrics& append_metrics() {
  static AppendMetrics* m = new AppendMetrics;  // never destroyed: writer threads may outlive main
  return *m;
}

std::string_view append_outcome(const Result<AppendResult>& r) {
  if (!r) return errc_name(r.error().code);
  return r->written ? "written" : "repeat";
}

}  // namespace orderflow::es
