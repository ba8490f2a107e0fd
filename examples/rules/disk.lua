-- Free space on the full filesystem, unless the host is in maintenance;
-- when the alert resolves, log that the cleanup is over.
if alert.labels.maintenance == "true" then
  skip("maintenance window")
end

local host = alert.labels.instance:match("^([^:]+)")
local mount = alert.labels.mountpoint or "/"

if alert.status == "resolved" then
  exec("bin/cleanup-disk", "--done", host, mount)
  return
end

if alert.annotations.runbook_url then
  env("RUNBOOK", alert.annotations.runbook_url)
end
exec{"bin/cleanup-disk", host, mount, timeout = "10m"}
