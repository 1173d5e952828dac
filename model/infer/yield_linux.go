package infer

import "syscall"

// osYield gives the thread's core to another runnable thread, of this
// process or another, if one waits for it (sched_yield). A held team's
// helper polls on a core the machine may be short of: when other processes
// are running, the core goes to them rather than to the poll.
func osYield() {
	_, _, _ = syscall.RawSyscall(syscall.SYS_SCHED_YIELD, 0, 0, 0)
}
