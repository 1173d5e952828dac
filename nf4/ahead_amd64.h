// codesAhead is how far ahead of the rows they are reading the NF4 kernels
// prefetch codes: a few microseconds of work, past the memory's latency.
// Each reads four rows at once, four short streams (or one run read at
// four places) that the hardware prefetchers do not run far enough ahead
// of; without it a W that is not in the caches (a mat-vec reads each weight
// once) waits on memory.
#define codesAhead 4096
