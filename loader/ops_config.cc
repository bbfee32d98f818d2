#include "loader/ops_config.h"

#include "common/duration_parse.h"
#include "common/safe_text.h"
#include "common/size_parse.h"
#include "loader/config.h"

namespace genomed::loader {
namespace {

Status with_key(const std::string& key, const Status& s) {
  return s.ok() ? s : Status(s.code(), key + ": " + s.message());
}

}  // namespace

std::map<std::string, Setter> ops_setters() {
  return {
      {"socket_mode",
       [](DaemonConfig& c, const std::string& k, const std::string& v) {
         auto mode = parse_socket_mode(v);
         if (!mode) return with_key(k, mode.status());
         c.ops.access.socket_mode = *mode;
         return Status::Ok();
       }},
      {"socket_group",
       [](DaemonConfig& c, const std::string& k, const std::string& v) {
         auto gid = parse_group(v);
         if (!gid) return with_key(k, gid.status());
         c.ops.access.socket_group = *gid;
         return Status::Ok();
       }},
      {"allow_uid",
       [](DaemonConfig& c, const std::string& k, const std::string& v) {
         return with_key(k, parse_uid_list(v, c.ops.access.allow_uids));
       }},
      {"allow_gid",
       [](DaemonConfig& c, const std::string& k, const std::string& v) {
         return with_key(k, parse_gid_list(v, c.ops.access.allow_gids));
       }},
      {"publish_uid",
       [](DaemonConfig& c, const std::string& k, const std::string& v) {
         return with_key(k, parse_uid_list(v, c.ops.access.publish_uids));
       }},
      {"publish_gid",
       [](DaemonConfig& c, const std::string& k, const std::string& v) {
         return with_key(k, parse_gid_list(v, c.ops.access.publish_gids));
       }},
      {"log_format",
       [](DaemonConfig& c, const std::string& k, const std::string& v) {
         if (v != "text" && v != "json") {
           return Status(Errc::bad_request, k + ": expected text or json, got " + quote(v));
         }
         c.ops.log_format = v == "json" ? LogFormat::json : LogFormat::text;
         return Status::Ok();
       }},
      {"client_log_rate",
       [](DaemonConfig& c, const std::string& k, const std::string& v) {
         auto size = parse_size(v);
         if (!size) return with_key(k, size.status());
         if (*size < 1024 || *size > (1ull << 30)) {
           return Status(Errc::bad_request,
                         k + ": expected bytes per second from 1K to 1G, got '" + v + "'");
         }
         c.ops.client_log_rate = *size;
         return Status::Ok();
       }},
      {"drain_timeout",
       [](DaemonConfig& c, const std::string& k, const std::string& v) {
         auto d = parse_duration(v);
         if (!d) return with_key(k, d.status());
         c.ops.drain_timeout = *d;
         return Status::Ok();
       }},
      {"metrics_listen",
       [](DaemonConfig& c, const std::string& k, const std::string& v) {
         // Checked for form here; bound at start (a taken port stops genomed).
         const auto colon = v.rfind(':');
         const std::string port = colon == std::string::npos ? v : v.substr(colon + 1);
         const bool digits = !port.empty() && port.size() <= 5 &&
                             port.find_first_not_of("0123456789") == std::string::npos;
         if (!digits || std::stoi(port) > 65535) {
           return Status(Errc::bad_request,
                         k + ": expected HOST:PORT or PORT (host 127.0.0.1), got " + quote(v));
         }
         c.ops.metrics_listen = colon == std::string::npos ? "127.0.0.1:" + v : v;
         return Status::Ok();
       }},
      {"metrics_request_timeout",
       [](DaemonConfig& c, const std::string& k, const std::string& v) {
         auto d = parse_duration(v);
         if (!d) return with_key(k, d.status());
         if (d->count() == 0) {
           return Status(Errc::bad_request, k + ": 0 would close every connection at once");
         }
         c.ops.metrics_request_timeout = *d;
         return Status::Ok();
       }},
  };
}

bool ops_key_is_string(const std::string& key) {
  return key != "allow_uid" && key != "allow_gid" && key != "publish_uid" &&
         key != "publish_gid" && key != "client_log_rate";
}

std::string ops_usage_text() {
  return R"(
operations (docs/operations.md):
  --socket-mode MODE          permission bits of the socket file, octal (default
                              0600: the daemon's user only); e.g. 0660 with
                              --socket-group to let a group connect
  --socket-group GROUP        group of the socket file (name or gid)
  --allow-uid UID[,UID...]    users (numbers or names) served; repeatable. With
                              this or --allow-gid, a client whose uid, gid and
                              groups match none (and that is not the daemon's
                              own user) gets 'permission_denied' at HELLO
  --allow-gid GID[,GID...]    groups (numbers or names) served; repeatable
  --publish-uid UID[,UID...]  users (numbers or names) who may PUBLISH adapters
                              from memory besides genomed's own user, who
                              alone may without it ('permission_denied');
                              repeatable
  --publish-gid GID[,GID...]  groups who may PUBLISH (gid or a supplementary
                              group); repeatable
  --log-format FORMAT         text (default) or json: one JSON object per line
                              (time, level, msg) for log shippers
  --client-log-rate SIZE      bytes per second of log lines that clients'
                              requests and connections may cause, all of them
                              together (bursts up to 4 s of it); lines past it
                              are counted (log_lines_suppressed) and summed up
                              in one line per 10 s. Lines about genomed itself
                              (start, workers, breaker) are never held back
                              (default 64K)
  --drain-timeout DURATION    on SIGTERM/SIGINT stop accepting clients, refuse
                              new loads and leases ('shutting_down'), and wait
                              up to DURATION for the leases held to be
                              released, then stop; a second signal stops at
                              once (default 10s; 0: stop at once). Keep it
                              below systemd's TimeoutStopSec
  --metrics-listen [HOST:]PORT  serve Prometheus metrics on
                              http://HOST:PORT/metrics; HOST 127.0.0.1 when
                              only PORT is given (default: none, no endpoint)
  --metrics-request-timeout DURATION  how long a metrics connection may
                              take from accept to close: a request not
                              complete by then gets 408 (default 10s)
)";
}

}  // namespace genomed::loader
