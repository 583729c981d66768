package peers

import rego.v1

required := {"training": 3, "ads": 2, "recommendations": 1}

default allow := false

allow if {
	consent := data.subjects[input.subject][input.purpose]
	consent.level >= required[input.purpose]
	not consent.withdrawn
	guardian_ok(consent)
}

guardian_ok(_) if data.subjects[input.subject].age >= 14

guardian_ok(consent) if consent.guardian
