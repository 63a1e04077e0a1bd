package procstat

import (
	"net"
	"os"
	"testing"
	"time"
)

// TestSelf reads this process: it has used CPU, has threads and context
// switches, and holds a UDP socket with no drops.
func TestSelf(t *testing.T) {
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for start := time.Now(); time.Since(start) < 20*time.Millisecond; {
	} // use some CPU
	if SelfCPU() <= 0 {
		t.Error("no CPU time used")
	}
	s, err := Read(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.Threads < 1 || s.Switches < 1 || s.CPU() != s.User+s.Sys {
		t.Errorf("stat %+v", s)
	}
	if drops, err := UDPDrops("self"); err != nil || drops != 0 {
		t.Errorf("UDP drops %d, %v", drops, err)
	}
	if _, err := MachineIdle(); err != nil {
		t.Error(err)
	}
	if _, err := UDPRcvbufErrors(); err != nil {
		t.Error(err)
	}
	if _, err := Read(-1); err == nil {
		t.Error("read a process that cannot exist")
	}
}
