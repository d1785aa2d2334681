--[[
  include args — checks of a script's arguments, made before its first write: Redis does not
  roll back a script that stops part way, so an argument found malformed later would leave a
  job half moved (out of one structure, in no other). A malformed argument stops the script
  with the error reply `ERR bad argument ARGV[<i>]: <what it must be>`, having changed nothing.
    check_integer(i, min)      decimal integer text as Redis writes it (an optional '-', no
                               leading zero) from min to 2^53 - 1; returns the number
    check_optional_integer(i, min)  the same, or '' (or absent)
    check_cursor(i)            a page cursor: ARGV[i] an integer of at least 0 and ARGV[i + 1]
                               an id, or both ''
    check_fraction(i)          a decimal number in [0, 1); returns it
    check_json(i)              JSON text (RFC 8259), or ''
    check_choice(i, a, b, c)   one of the words a, b (and c)
]]
local function refuse_argument(i, what)
  error({err = 'ERR bad argument ARGV[' .. i .. ']: ' .. what})
end

local function check_integer(i, min)
  local text = ARGV[i]
  -- Scripts hand the text itself to Redis commands (PEXPIRE, XADD MAXLEN), which refuse a
  -- leading zero: '010' must be refused here, before a write, not by the command after one.
  local n = text and (text == '0' or string.find(text, '^%-?[1-9]%d*$')) and tonumber(text)
  -- Past 2^53 - 1 a Lua number no longer holds every integer: the text would not be the number.
  if not n or n < min or n >= 9007199254740992 then
    refuse_argument(i, 'must be a decimal integer from ' .. min .. ' to 2^53 - 1')
  end
  return n
end

local function check_optional_integer(i, min)
  if ARGV[i] ~= nil and ARGV[i] ~= '' then check_integer(i, min) end
end

local function check_cursor(i)
  check_optional_integer(i, 0)
  local no_score, no_id = (ARGV[i] or '') == '', (ARGV[i + 1] or '') == ''
  if no_score ~= no_id then
    refuse_argument(i + 1, "must be a job id with a cursor's score, '' without one")
  end
end

local function check_fraction(i)
  local text = ARGV[i]
  -- Without the pattern, tonumber would also take hex, 'inf' and 'nan'.
  local n = text and string.find(text, '^[%d.eE+-]+$') and tonumber(text)
  if not n or n < 0 or n >= 1 then refuse_argument(i, 'must be a decimal number in [0, 1)') end
  return n
end

local function strict_decode(text)
  -- Redis's cjson reads NaN, Infinity, hex, '+1' and '01' unless told not to; the setting is
  -- the server's, so it is put back as it was.
  local lenient = cjson.decode_invalid_numbers()
  cjson.decode_invalid_numbers(false)
  local decoded = pcall(cjson.decode, text)
  cjson.decode_invalid_numbers(lenient)
  return decoded
end

local function check_json(i)
  local text = ARGV[i]
  if text == '' then return end
  local valid = text ~= nil and strict_decode(text)
  -- Even so it reads '-.5', '1.' and '1.e5': outside the strings a '.' must stand between digits.
  if valid and string.find(text, '.', 1, true) then
    local bare = ' ' .. string.gsub(string.gsub(text, '\\.', ''), '"[^"]*"', '') .. ' '
    valid = not (string.find(bare, '[^%d]%.') or string.find(bare, '%.[^%d]'))
  end
  if not valid then refuse_argument(i, "must be JSON text, or ''") end
end

local function check_choice(i, a, b, c)
  local word = ARGV[i]
  if word ~= a and word ~= b and (c == nil or word ~= c) then
    refuse_argument(i, 'must be one of ' .. table.concat({a, b, c}, ', '))
  end
end
