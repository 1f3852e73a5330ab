package policy

import (
	"os"
	"strings"
	"testing"
)

// TestDocsWorkedExample keeps the worked example of docs/plugins.md
// identical to testdata/plugins/example/main.go, which is built and tested.
func TestDocsWorkedExample(t *testing.T) {
	doc, err := os.ReadFile("../../docs/plugins.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("../../testdata/plugins/example/main.go")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), "```go\n"+string(src)+"```\n") {
		t.Error("docs/plugins.md §5 differs from testdata/plugins/example/main.go: copy the file into the doc")
	}
}
