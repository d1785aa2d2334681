--[[
  admit-queue — register a queue ahead of a submission, within the maximum number of queues.

  KEYS[1]  queue registry   <prefix>:queues   (the set of queue names, outside every queue's slot)

  ARGV[1]  queue name
  ARGV[2]  maximum number of queues (0 = unlimited)

  The registry's own script, touching its one key (so it runs on Redis Cluster too): the check
  and the add are one step, so submissions racing for new queues, from any number of gateways,
  never hold more names than the maximum between them. A queue refused here may still take a
  job if it exists after all (its name was lost): the enqueue script decides, by its stats hash.

  Returns
  {'KNOWN'}   the name was there
  {'ADDED'}   the name is added
  {'FULL'}    the name was not there and the registry holds the maximum; nothing was written
]]

-- @include args

local registry, queue, max = KEYS[1], ARGV[1], check_integer(2, 0)

if redis.call('SISMEMBER', registry, queue) == 1 then
  return {'KNOWN'}
end
if max > 0 and redis.call('SCARD', registry) >= max then
  return {'FULL'}
end
redis.call('SADD', registry, queue)
return {'ADDED'}
