--[[
  include lease-lost — lease_lost(job_key, token, state): the reply of an ack, fail or retry whose
  token no longer holds the job's lease. When this token's own call ended the lease (that call's
  reply was lost and it is being sent again), the reply says what that call did:
  {'LEASE_LOST', state, ended_as}; otherwise {'LEASE_LOST', state}.
]]
local function lease_lost(job_key, token, state)
  local ended = redis.call('HGET', job_key, 'ended_lease')
  local sep = ended and string.find(ended, ':', 1, true)
  if sep and string.sub(ended, sep + 1) == token then
    return {'LEASE_LOST', state, string.sub(ended, 1, sep - 1)}
  end
  return {'LEASE_LOST', state}
end
