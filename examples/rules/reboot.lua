-- The old executor's reboot example, as a rule: reboot the instance that
-- has unrecoverable errors, one reboot at a time per host (by: [instance]
-- in rules.yml), and at most three times a day: the fourth needs a human.
if alert.status ~= "firing" then
  return -- nothing to clean up when it resolves
end

-- "app3:8080" -> "app3"
local host = (alert.labels.instance or ""):match("^([^:]+)")
if not host then
  skip("no instance label to reboot")
end

local key = "reboots:" .. host
if (state.get(key) or 0) >= 3 then
  skip(host .. " rebooted 3 times today: leaving it to a human")
end
state.incr(key, 1, "24h") -- the day runs from the first reboot
exec{"bin/reboot-host", host, max = 1}
