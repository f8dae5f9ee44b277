package ftpstest

import "mastfs/ftps/ftpstest/stagegen"

// The stage generator lives in package stagegen, which imports no testing
// code, so that mastfs demo can serve the same stage. These names keep the
// tests that use ftpstest's spelling working.

// Fixed places in every stage, slash-separated and relative to Stage.Root.
// The FTP path of each is "/" + the constant.
const (
	AnonDir     = stagegen.AnonDir
	AnonDir2    = stagegen.AnonDir2
	PrivateDir  = stagegen.PrivateDir
	HSTFile     = stagegen.HSTFile
	JWSTFile    = stagegen.JWSTFile
	SpaceFile   = stagegen.SpaceFile
	UnicodeFile = stagegen.UnicodeFile
	LinkFile    = stagegen.LinkFile
	LinkTarget  = stagegen.LinkTarget
	NestedFile  = stagegen.NestedFile
	LargeFile   = stagegen.LargeFile
	ManyDir     = stagegen.ManyDir
	EmptyFile   = stagegen.EmptyFile
	SecretFile  = stagegen.SecretFile

	// DefaultUser is the authenticated account the servers accept.
	DefaultUser = stagegen.DefaultUser
	// OtherUser owns a stage nobody else may read; it has no account.
	OtherUser = stagegen.OtherUser

	// DefaultLargeSize is the size asked of LargeFile by default.
	DefaultLargeSize = stagegen.DefaultLargeSize
	// DefaultManyFiles is how many files ManyDir holds by default.
	DefaultManyFiles = stagegen.DefaultManyFiles
)

// Access says who may read a stage entry through FTP.
type Access = stagegen.Access

// Who may read an entry.
const (
	Public   = stagegen.Public
	UserOnly = stagegen.UserOnly
	NoOne    = stagegen.NoOne
)

// StageOptions shapes WriteStage. The zero value gives the default stage.
type StageOptions = stagegen.StageOptions

// File is one entry WriteStage made.
type File = stagegen.File

// Stage is a MAST-like tree on local disk and the record of what it holds.
type Stage = stagegen.Stage

// WriteStage writes a deterministic MAST-like tree into dir: see stagegen.WriteStage.
func WriteStage(dir string, opts StageOptions) (*Stage, error) {
	return stagegen.WriteStage(dir, opts)
}
