--[[
  include args — checks of a script's arguments, made before its first write: Redis does not
  roll back a script that stops part way, so an argument found malformed later would leave a
  job half moved (out of one structure, in no other). A malformed argument stops the script
  with the error reply `ERR bad argument ARGV[<i>]: <what it must be>`, having changed nothing.
    check_integer(i, min)      decimal integer text (digits, an optional '-') from min to
                               2^53 - 1; returns the number
    check_optional_integer(i, min)  the same, or '' (or absent)
    check_fraction(i)          a decimal number in [0, 1); returns it
    check_json(i)              JSON text, or ''
    check_choice(i, a, b, c)   one of the words a, b (and c)
]]
local function refuse_argument(i, what)
  error({err = 'ERR bad argument ARGV[' .. i .. ']: ' .. what})
end

local function check_integer(i, min)
  local text = ARGV[i]
  local n = text and string.find(text, '^%-?%d+$') and tonumber(text)
  -- Past 2^53 - 1 a Lua number no longer holds every integer: the text would not be the number.
  if not n or n < min or n >= 9007199254740992 then
    refuse_argument(i, 'must be a decimal integer from ' .. min .. ' to 2^53 - 1')
  end
  return n
end

local function check_optional_integer(i, min)
  if ARGV[i] ~= nil and ARGV[i] ~= '' then check_integer(i, min) end
end

local function check_fraction(i)
  local text = ARGV[i]
  -- Without the pattern, tonumber would also take hex, 'inf' and 'nan'.
  local n = text and string.find(text, '^[%d.eE+-]+$') and tonumber(text)
  if not n or n < 0 or n >= 1 then refuse_argument(i, 'must be a decimal number in [0, 1)') end
  return n
end

local function check_json(i)
  local text = ARGV[i]
  if text == '' then return end
  -- cjson also reads NaN, Infinity, nan, inf and hex numbers, which are not JSON: outside the
  -- strings, only numbers, punctuation and the letters of true, false and null may stand.
  local bare = string.gsub(string.gsub(text or '', '\\.', ''), '"[^"]*"', '')
  if text == nil or string.find(bare, '[^%s%d.eE+,:%[%]{}truefalsn-]') or
      string.find(bare, 'nan', 1, true) or not pcall(cjson.decode, text) then
    refuse_argument(i, "must be JSON text, or ''")
  end
end

local function check_choice(i, a, b, c)
  local word = ARGV[i]
  if word ~= a and word ~= b and (c == nil or word ~= c) then
    refuse_argument(i, 'must be one of ' .. table.concat({a, b, c}, ', '))
  end
end
