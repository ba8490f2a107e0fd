-- The old executor's reboot example, as a rule: reboot the instance that
-- has unrecoverable errors, one reboot at a time per alert.
if alert.status ~= "firing" then
  return -- nothing to clean up when it resolves
end

-- "app3:8080" -> "app3"
local host = (alert.labels.instance or ""):match("^([^:]+)")
if not host then
  skip("no instance label to reboot")
end

exec{"bin/reboot-host", host, max = 1}
