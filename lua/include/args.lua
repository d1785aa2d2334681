--[[
  include args — checks of a script's arguments, made before its first write: Redis does not
  roll back a script that stops part way, so an argument found malformed later would leave a
  job half moved (out of one structure, in no other). A malformed argument stops the script
  with the error reply `ERR bad argument ARGV[<i>]: <what it must be>`, having changed nothing.
    check_integer(i, min)      decimal integer text (digits, an optional '-') from min to 2^53 - 1
    check_optional_integer(i, min)  the same, or '' (or absent)
    check_fraction(i)          a decimal number in [0, 1)
    check_json(i)              JSON text, or ''
    check_choice(i, words)     one of the words (a table: word -> true)
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
end

local function check_optional_integer(i, min)
  if ARGV[i] ~= nil and ARGV[i] ~= '' then check_integer(i, min) end
end

local function check_fraction(i)
  local text = ARGV[i]
  -- Without the pattern, tonumber would also take hex, 'inf' and 'nan'.
  local n = text and string.find(text, '^[%d.eE+-]+$') and tonumber(text)
  if not n or n < 0 or n >= 1 then refuse_argument(i, 'must be a decimal number in [0, 1)') end
end

local function check_json(i)
  local text = ARGV[i]
  if text == '' then return end
  -- cjson also reads NaN, Infinity and hex numbers, which are not JSON: with the strings taken
  -- out, only numbers, punctuation and the three literals may remain.
  local bare = string.gsub(string.gsub(text or '', '\\.', ''), '"[^"]*"', '')
  bare = string.gsub(string.gsub(string.gsub(bare, 'true', ''), 'false', ''), 'null', '')
  if text == nil or string.find(bare, '[^%s%d.eE+,:%[%]{}-]') or not pcall(cjson.decode, text) then
    refuse_argument(i, "must be JSON text, or ''")
  end
end

local function check_choice(i, words)
  if not words[ARGV[i]] then
    local list = {}
    for word in pairs(words) do list[#list + 1] = word end
    table.sort(list)
    refuse_argument(i, 'must be one of ' .. table.concat(list, ', '))
  end
end
