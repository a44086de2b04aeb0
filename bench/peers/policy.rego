# The benchmark workload's four layers in Rego (v1 syntax), for regopy (rego-cpp).
#
# Rego has no errors in the hot path, only `undefined`: a missing attribute, an unknown account
# or a builtin that fails leaves an expression undefined. That makes a plain deny rule fail
# open (`not deny` is true when `deny` is undefined), so every deny rule below is written as
# "not provably harmless": it matches unless its harmless case is positively established.
package layergate.bench

import rego.v1

trust_domain := "prod.example.org"

writes := {"write", "deploy", "delete", "rotate", "scale"}

default allow := false

# The layers are ANDed: every one must allow.
allow if {
	identity
	rbac
	scope
	request
}

account := data.accounts[input.subject.id]

# -- identity: a live, attested workload of the production trust domain

identity if {
	not revoked
	account.trust_domain == trust_domain
	account.attested == true
}

# Matches when `revoked` is true, missing, not a boolean, or the account is unknown.
revoked if not account.revoked == false

# -- rbac: a bound role, or a role it extends, grants the action on the resource type

rbac if {
	some role in graph.reachable(data.role_parents, account.roles)
	[input.action.name, input.resource.type] in data.role_grants[role]
}

# -- scope: the resource is in the workload's namespace and its token carries the scope

scope if {
	input.resource.properties.namespace == account.namespace
	input.resource.properties.scope in input.subject.properties.scopes
}

# -- request: network, amount, then environment or time-bound elevation

request if {
	not outside_network
	not over_limit
	request_allowed
}

# Matches unless the source address is provably inside one of the account's networks, so bad
# address text (`10.0.0.999`) or a missing one denies.
outside_network if not inside_network

inside_network if {
	some network in account.networks
	cidr_contains(network, input.context.source_ip)
}

over_limit if {
	input.action.name in writes
	not within_limit
}

# Without `is_number`, Rego's total order over all types would let `null <= 100` through.
within_limit if {
	is_number(input.context.amount)
	is_number(account.limit)
	input.context.amount <= account.limit
}

request_allowed if input.resource.properties.environment in account.environments

request_allowed if rfc3339_ns(input.context.elevation_expires) > now

now := rfc3339_ns(data.now)

# rego-cpp 1.5's `time.parse_rfc3339_ns` refuses the `Z` suffix (it takes `+00:00`); an
# unparsable time leaves `request_allowed` undefined, which is Layergate's "no match".
rfc3339_ns(text) := time.parse_rfc3339_ns(regex.replace(text, `[Zz]$`, "+00:00"))

# -- IPv4 CIDR matching: rego-cpp has no `net.cidr_contains`, so it is written out here.
# Each octet must read back as itself (`format_int`), which refuses values over 255, signs,
# exponents and leading zeros, as Python's `ipaddress` does; an IPv6 address never matches an
# IPv4 network (in Layergate, too, the versions must agree).

ipv4_number(text) := ((((octets[0] * 256) + octets[1]) * 256) + octets[2]) * 256 + octets[3] if {
	parts := split(text, ".")
	count(parts) == 4
	octets := [n | some part in parts; n := to_number(part); format_int(n, 10) == part]
	count(octets) == 4
	every n in octets {
		n >= 0
		n <= 255
	}
}

cidr_contains(network, address) if {
	[base, prefix] := split(network, "/")
	shift := 32 - to_number(prefix)
	bits.rsh(ipv4_number(address), shift) == bits.rsh(ipv4_number(base), shift)
}
