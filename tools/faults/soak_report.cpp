#include "faults/soak_report.hpp"

#include "faults/json_writer.hpp"

namespace epcomm::faults {

namespace {

void write_phase(JsonWriter& w, const std::string& key, const SoakPhase& p) {
  w.begin_object(key).field("pairs", p.pairs).field("checks", p.checks).field("shapes", p.shapes);
  w.field("seconds", p.seconds).end_object();
}

void write_usage(JsonWriter& w, const std::string& key, const std::vector<SoakUsage>& per_rank) {
  w.begin_array(key);
  for (const SoakUsage& u : per_rank) {
    w.begin_object().field("device_used_bytes", u.device_used).field("rss_kib", u.rss_kib);
    w.field("fds", u.fds).end_object();
  }
  w.end_array();
}

}  // namespace

std::string soak_json(const SoakReport& r) {
  JsonWriter w;
  w.begin_object()
      .field("tool", "epcomm soak")
      .field("num_ranks", r.num_ranks)
      .field("check_every", r.check_every);
  write_phase(w, "ll", r.ll);
  write_phase(w, "ht", r.ht);
  write_usage(w, "before", r.before);
  write_usage(w, "after", r.after);
  w.begin_object("bounds").field("device_bytes", r.device_bound).field("rss_kib", r.rss_bound_kib);
  w.field("fds", r.fd_bound).end_object();
  w.field("device_ok", r.device_ok)
      .field("rss_ok", r.rss_ok)
      .field("fds_ok", r.fds_ok)
      .field("passed", r.passed);
  w.end_object();
  return w.text() + "\n";
}

}  // namespace epcomm::faults
