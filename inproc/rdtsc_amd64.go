package inproc

// rdtscp reads the time-stamp counter after all earlier instructions
// (rdtsc_amd64.s).
func rdtscp() uint64
