package kernel

import "testing"

// BenchmarkBuiltinSwitch shows what switching between plugins costs: the
// fast-path decisions of special-ranges, denylist and allowlist one after
// the other ("s+d+a", what a chain of three does) against each alone and
// against one instance called three times ("a+a+a"). When the three were
// separate modules, s+d+a took ~1.5x the sum of the singles: alternating
// between three different programs' machine code is slower than running
// one program in three instances (separately compiled copies of one module
// add up). Since the built-ins are one module (plugins/builtin), s+d+a is
// the latter case.
func BenchmarkBuiltinSwitch(b *testing.B) {
	in := []byte(`{"op":"tcp.connect","proto":"tcp","addr":"93.184.216.34","port":443,"names":["api.example.test"],"guest":"app","time_ms":1795780800000}`)
	bin := toBinary(b, in)
	a := builtinInstance(b, "allowlist", `{"rules":["tcp://api.example.test:443","tcp://*.cdn.example.test:443"],"cache_ttl":"0s"}`)
	d := builtinInstance(b, "denylist", `{"rules":["tcp://*:25"],"cache_ttl":"0s"}`)
	s := builtinInstance(b, "special-ranges", `{}`)
	for _, c := range []struct {
		name  string
		insts []*Instance
	}{{"s", []*Instance{s}}, {"d", []*Instance{d}}, {"a", []*Instance{a}}, {"s+d+a", []*Instance{s, d, a}}, {"a+a+a", []*Instance{a, a, a}}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				for _, i := range c.insts {
					if _, err := i.DecideFast(bin); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
