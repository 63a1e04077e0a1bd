-- lib/eligible.lua: eligible, for assign.lua.
--
-- eligible(reqs, attrs, sk, waited) mirrors routing.Policy.Eligible for the
-- encoded requirements (routing.Policy.Encoded): whether an agent of skills
-- sk may take a customer of attributes attrs who has waited waited ms. No
-- KEYS or ARGV.

local function eligible(reqs, attrs, sk, waited)
  if type(attrs) ~= 'table' then return true end
  for _, r in ipairs(reqs) do
    local v = attrs[r.a]
    if type(v) == 'string' and v ~= '' then
      local need = 1
      for _, st in ipairs(r.st) do
        if waited < st[1] then break end
        need = st[2]
      end
      if need > 0 then
        local lv = 0
        if type(sk) == 'table' and type(sk[r.s]) == 'table' and type(sk[r.s][v]) == 'number' then
          lv = sk[r.s][v]
        end
        if lv < need then return false end
      end
    end
  end
  return true
end
