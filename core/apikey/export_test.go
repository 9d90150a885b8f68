package apikey

// MatchSteps exposes the matcher's step count to the external tests.
var MatchSteps = matchSteps
