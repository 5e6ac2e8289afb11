package telemetry

import (
	"testing"
	"time"
)

func TestLine(t *testing.T) {
	l := NewLine(nil, "m")
	l.Tag("id", `a b,c=d\e`)
	l.String("s", "say \"hi\" \\ \xff")
	l.Float("f", 1.5)
	l.Int("i", -3)
	l.Bool("b", true)
	l.Base64("raw", []byte("ABC"))
	got := string(l.End(time.Unix(0, 42)))
	want := "m,id=a\\ b\\,c\\=d\\\\e s=\"say \\\"hi\\\" \\\\ \uFFFD\",f=1.5,i=-3i,b=true,raw=\"QUJD\" 42\n"
	if got != want {
		t.Errorf("line\n got %q\nwant %q", got, want)
	}
	l = NewLine([]byte("x\n"), "m")
	l.Int("n", 1)
	if got := string(l.EndNS(7)); got != "x\nm n=1i 7\n" {
		t.Errorf("appended line %q", got)
	}
}
