#include "bus/nats/nats_common.h"

namespace orderflow::bus::nats {

Unexpected nats_error(const std::string& what, natsStatus s) {
  return fail(Errc::unavailable, "NATS: " + what + ": " + natsStatus_GetText(s) + " " + nats_GetLastError(nullptr));
}

Result<natsOptions*> connection_options(const std::vector<std::string>& servers) {
  std::vector<std::string> urls;
  for (const auto& s : servers) urls.push_back("nats://" + s);
  std::vector<const char*> list;
  for (const auto& u : urls) list.push_back(u.c_str());
  natsOptions* options = nullptr;
  natsStatus s = natsOptions_Create(&options);
  if (s == NATS_OK) s = natsOptions_SetServers(options, list.data(), static_cast<int>(list.size()));
  if (s == NATS_OK) s = natsOptions_SetMaxReconnect(options, -1);  // reconnect without end
  if (s == NATS_OK) s = natsOptions_SetReconnectWait(options, 250);
  if (s == NATS_OK) s = natsOptions_SetTimeout(options, 2000);
  if (s != NATS_OK) {
    natsOptions_Destroy(options);
    return nats_error("options", s);
  }
  return options;
}

Result<void> ensure_stream(jsCtx* js, const std::string& name, const std::string& subjects, int replicas) {
  jsErrCode err = static_cast<jsErrCode>(0);
  jsStreamInfo* info = nullptr;
  natsStatus s = js_GetStreamInfo(&info, js, name.c_str(), nullptr, &err);
  jsStreamInfo_Destroy(info);
  if (s == NATS_NOT_FOUND) {
    const char* subject_list[] = {subjects.c_str()};
    jsStreamConfig cfg;
    jsStreamConfig_Init(&cfg);
    cfg.Name = name.c_str();
    cfg.Subjects = subject_list;
    cfg.SubjectsLen = 1;
    cfg.Storage = js_FileStorage;
    cfg.Replicas = replicas;
    info = nullptr;
    s = js_AddStream(&info, js, &cfg, nullptr, &err);
    jsStreamInfo_Destroy(info);
    if (s != NATS_OK) return nats_error("creating the stream " + name, s);
  } else if (s != NATS_OK) {
    return nats_error("looking up the stream " + name, s);
  }
  return {};
}

}  // namespace orderflow::bus::nats
