package wasi

// Filetype is a WASI filetype (u8).
type Filetype = uint8

// Filetypes.
const (
	FiletypeUnknown         Filetype = 0
	FiletypeBlockDevice     Filetype = 1
	FiletypeCharacterDevice Filetype = 2
	FiletypeDirectory       Filetype = 3
	FiletypeRegularFile     Filetype = 4
	FiletypeSocketDgram     Filetype = 5
	FiletypeSocketStream    Filetype = 6
	FiletypeSymbolicLink    Filetype = 7
)

// Fdflags (u16).
const (
	FdflagAppend   uint16 = 1 << 0
	FdflagDsync    uint16 = 1 << 1
	FdflagNonblock uint16 = 1 << 2
	FdflagRsync    uint16 = 1 << 3
	FdflagSync     uint16 = 1 << 4
)

// Oflags (u16) of path_open.
const (
	OflagCreat     uint16 = 1 << 0
	OflagDirectory uint16 = 1 << 1
	OflagExcl      uint16 = 1 << 2
	OflagTrunc     uint16 = 1 << 3
)

// Lookupflags (u32).
const LookupSymlinkFollow uint32 = 1

// Fstflags (u16) of *_filestat_set_times.
const (
	FstflagAtim    uint16 = 1 << 0
	FstflagAtimNow uint16 = 1 << 1
	FstflagMtim    uint16 = 1 << 2
	FstflagMtimNow uint16 = 1 << 3
)

// Whence of fd_seek.
const (
	WhenceSet uint8 = 0
	WhenceCur uint8 = 1
	WhenceEnd uint8 = 2
)

// Clock ids.
const (
	ClockRealtime         uint32 = 0
	ClockMonotonic        uint32 = 1
	ClockProcessCputimeID uint32 = 2
	ClockThreadCputimeID  uint32 = 3
)

// Event types of poll_oneoff.
const (
	EventtypeClock   uint8 = 0
	EventtypeFdRead  uint8 = 1
	EventtypeFdWrite uint8 = 2
)

// SubclockAbstime: the clock subscription's timeout is an absolute time.
const SubclockAbstime uint16 = 1

// EventFdReadwriteHangup is set in an fd event's flags when the peer hung up.
const EventFdReadwriteHangup uint16 = 1

// Preopentype: the only one defined in preview 1.
const PreopentypeDir uint8 = 0

// Rights (u64), in spec bit order.
const (
	RightFdDatasync Rights = 1 << iota
	RightFdRead
	RightFdSeek
	RightFdFdstatSetFlags
	RightFdSync
	RightFdTell
	RightFdWrite
	RightFdAdvise
	RightFdAllocate
	RightPathCreateDirectory
	RightPathCreateFile
	RightPathLinkSource
	RightPathLinkTarget
	RightPathOpen
	RightFdReaddir
	RightPathReadlink
	RightPathRenameSource
	RightPathRenameTarget
	RightPathFilestatGet
	RightPathFilestatSetSize
	RightPathFilestatSetTimes
	RightFdFilestatGet
	RightFdFilestatSetSize
	RightFdFilestatSetTimes
	RightPathSymlink
	RightPathRemoveDirectory
	RightPathUnlinkFile
	RightPollFdReadwrite
	RightSockShutdown
	RightSockAccept
)

// Rights is a WASI rights bit set.
type Rights = uint64

// Rights bundles the host grants. Every fd_* and path_* call checks the
// rights it needs on its fd (ENOTCAPABLE without; EBADF for reading or
// writing an fd not opened for it, as POSIX), a guest can only drop rights
// (fd_fdstat_set_rights), and what path_open hands out is what was asked
// for, within the directory's inheriting rights. See docs/filesystem.md.
const (
	RightsAll Rights = 1<<30 - 1

	RightsFileBase = RightFdDatasync | RightFdRead | RightFdSeek | RightFdFdstatSetFlags |
		RightFdSync | RightFdTell | RightFdWrite | RightFdAdvise | RightFdAllocate |
		RightFdFilestatGet | RightFdFilestatSetSize | RightFdFilestatSetTimes | RightPollFdReadwrite

	RightsDirBase = RightFdFdstatSetFlags | RightFdSync | RightFdAdvise | RightPathCreateDirectory |
		RightPathCreateFile | RightPathLinkSource | RightPathLinkTarget | RightPathOpen |
		RightFdReaddir | RightPathReadlink | RightPathRenameSource | RightPathRenameTarget |
		RightPathFilestatGet | RightPathFilestatSetSize | RightPathFilestatSetTimes |
		RightFdFilestatGet | RightFdFilestatSetTimes | RightPathSymlink |
		RightPathRemoveDirectory | RightPathUnlinkFile

	RightsDirInheriting = RightsDirBase | RightsFileBase

	// RightsDirModify are the rights of a directory fd that change the
	// directory or what is in it (a link or rename source moves a file
	// out of its mount). A read-only mount grants none of them.
	RightsDirModify = RightPathCreateDirectory | RightPathCreateFile | RightPathLinkSource |
		RightPathLinkTarget | RightPathRenameSource | RightPathRenameTarget | RightPathSymlink |
		RightPathRemoveDirectory | RightPathUnlinkFile | RightPathFilestatSetSize |
		RightPathFilestatSetTimes | RightFdFilestatSetTimes

	// RightsSocket is what a socket fd reports (connection and listener
	// rights together, as sock_open cannot know which it will become).
	RightsSocket = RightFdRead | RightFdWrite | RightFdFdstatSetFlags | RightFdFilestatGet |
		RightPollFdReadwrite | RightSockShutdown | RightSockAccept

	// RightsStdio is what fds 0-2 report. No FD_SEEK or FD_TELL: wasi-libc's
	// isatty() requires their absence on a terminal. FD_SYNC and
	// FD_DATASYNC let a guest flush stdout as it would natively.
	RightsStdio = RightFdRead | RightFdWrite | RightFdFdstatSetFlags | RightFdFilestatGet |
		RightPollFdReadwrite | RightFdSync | RightFdDatasync
)
