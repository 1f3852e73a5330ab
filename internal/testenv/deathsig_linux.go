package testenv

import (
	"os/exec"
	"syscall"
)

// setDeathSignal kills cmd when the test process dies without cleaning up.
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
