package ftps

import (
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"testing"
	"time"

	"mastfs/fs/stage"
)

// listNow is the "now" used by the LIST cases unless a case sets its own.
var listNow = time.Date(2025, time.March, 10, 12, 0, 0, 0, time.UTC)

func utc(y int, m time.Month, d, hh, mm int) time.Time {
	return time.Date(y, m, d, hh, mm, 0, 0, time.UTC)
}

var longName = strings.Repeat("n", 1000) + ".fits"

// listCase is one LIST body, the entries it should give and how many
// errors it should report.
type listCase struct {
	name string
	now  time.Time // zero means listNow
	body string
	want []stage.Entry
	errs int
}

var listCases = []listCase{
	{
		name: "vsftpd file",
		body: "-rw-r--r--    1 ftp      ftp          2880 Mar 03 12:34 jbk802010_flt.fits\r\n",
		want: []stage.Entry{{Name: "jbk802010_flt.fits", Type: stage.File, Size: 2880, ModTime: utc(2025, 3, 3, 12, 34)}},
	},
	{
		name: "vsftpd dir with year",
		body: "drwxr-xr-x    2 ftp      ftp          4096 Jan 15  2024 nested\r\n",
		want: []stage.Entry{{Name: "nested", Type: stage.Dir, Size: 4096, ModTime: utc(2024, 1, 15, 0, 0)}},
	},
	{
		name: "symlink with space in target",
		body: "lrwxrwxrwx    1 ftp      ftp            15 Nov 02 10:00 latest.fits -> with space.fits\n",
		want: []stage.Entry{{Name: "latest.fits", Type: stage.Link, Size: 15, ModTime: utc(2024, 11, 2, 10, 0), Target: "with space.fits"}},
	},
	{
		name: "symlink target with slashes",
		body: "lrwxrwxrwx 1 ftp ftp 16 Mar 01 09:00 cur -> ../data/x.fits\n",
		want: []stage.Entry{{Name: "cur", Type: stage.Link, Size: 16, ModTime: utc(2025, 3, 1, 9, 0), Target: "../data/x.fits"}},
	},
	{
		name: "pure-ftpd numeric ids and padded day",
		body: "-rw-r--r--    1 1000       1000             2880 Mar  3 12:34 jbk802010_flt.fits\n" +
			"drwxr-xr-x    2 1000       1000             4096 Jan 15  2024 nested\n",
		want: []stage.Entry{
			{Name: "jbk802010_flt.fits", Type: stage.File, Size: 2880, ModTime: utc(2025, 3, 3, 12, 34)},
			{Name: "nested", Type: stage.Dir, Size: 4096, ModTime: utc(2024, 1, 15, 0, 0)},
		},
	},
	{
		name: "proftpd",
		body: "-rw-r--r--   1 ftp      ftp          2880 Mar  3 12:34 jbk802010_flt.fits\r\n" +
			"lrwxrwxrwx   1 ftp      ftp            15 Mar  3 12:35 latest.fits -> jbk802010_flt.fits\r\n",
		want: []stage.Entry{
			{Name: "jbk802010_flt.fits", Type: stage.File, Size: 2880, ModTime: utc(2025, 3, 3, 12, 34)},
			{Name: "latest.fits", Type: stage.Link, Size: 15, ModTime: utc(2025, 3, 3, 12, 35), Target: "jbk802010_flt.fits"},
		},
	},
	{
		name: "missing group column",
		body: "-rw-r--r--   1 ftp          2880 Mar  3 12:34 a.fits\n",
		want: []stage.Entry{{Name: "a.fits", Type: stage.File, Size: 2880, ModTime: utc(2025, 3, 3, 12, 34)}},
	},
	{
		name: "no link count",
		body: "-rw-r--r-- ftp ftp 2880 Mar 3 12:34 a.fits\n",
		want: []stage.Entry{{Name: "a.fits", Type: stage.File, Size: 2880, ModTime: utc(2025, 3, 3, 12, 34)}},
	},
	{
		name: "mode and size only",
		body: "-rw-r--r-- 2880 Mar 3 12:34 a.fits\n",
		want: []stage.Entry{{Name: "a.fits", Type: stage.File, Size: 2880, ModTime: utc(2025, 3, 3, 12, 34)}},
	},
	{
		name: "owner named like a month",
		body: "-rw-r--r-- 1 jan 12 2024 Mar 03 12:34 a.fits\n",
		want: []stage.Entry{{Name: "a.fits", Type: stage.File, Size: 2024, ModTime: utc(2025, 3, 3, 12, 34)}},
	},
	{
		name: "acl marker and month in capitals",
		body: "-rw-r--r--+ 1 ftp ftp 7 MAR 3 12:34 a\n-rw-r--r--. 1 ftp ftp 7 mar 3 2020 b\n",
		want: []stage.Entry{
			{Name: "a", Type: stage.File, Size: 7, ModTime: utc(2025, 3, 3, 12, 34)},
			{Name: "b", Type: stage.File, Size: 7, ModTime: utc(2020, 3, 3, 0, 0)},
		},
	},
	{
		name: "spaces in names are kept",
		body: "-rw-r--r-- 1 ftp ftp 1 Mar 03 12:34 a  b   c\n" +
			"-rw-r--r-- 1 ftp ftp 1 Jan 15  2024   lead\n" +
			"-rw-r--r-- 1 ftp ftp 1 Mar 03 12:34 trail \r\n" +
			"-rw-r--r-- 1 ftp ftp 1 Mar 03 12:34 Mar 03 12:34 x\n",
		want: []stage.Entry{
			{Name: "a  b   c", Type: stage.File, Size: 1, ModTime: utc(2025, 3, 3, 12, 34)},
			{Name: "  lead", Type: stage.File, Size: 1, ModTime: utc(2024, 1, 15, 0, 0)},
			{Name: "trail ", Type: stage.File, Size: 1, ModTime: utc(2025, 3, 3, 12, 34)},
			{Name: "Mar 03 12:34 x", Type: stage.File, Size: 1, ModTime: utc(2025, 3, 3, 12, 34)},
		},
	},
	{
		name: "unicode and long names",
		body: "-rw-r--r-- 1 ftp ftp 1 Mar 03 12:34 naïve 日本.fits\n" +
			"-rw-r--r-- 1 ftp ftp 2 Mar 03 12:34 " + longName + "\n",
		want: []stage.Entry{
			{Name: "naïve 日本.fits", Type: stage.File, Size: 1, ModTime: utc(2025, 3, 3, 12, 34)},
			{Name: longName, Type: stage.File, Size: 2, ModTime: utc(2025, 3, 3, 12, 34)},
		},
	},
	{
		name: "huge sizes",
		body: "-rw-r--r-- 1 ftp ftp 9223372036854775807 Mar 03 12:34 max\n" +
			"-rw-r--r-- 1 ftp ftp 9223372036854775808 Mar 03 12:34 over\n" +
			"-rw-r--r-- 1 ftp ftp 99999999999999999999999 Mar 03 12:34 far\n",
		want: []stage.Entry{{Name: "max", Type: stage.File, Size: 1<<63 - 1, ModTime: utc(2025, 3, 3, 12, 34)}},
		errs: 2,
	},
	{
		name: "total, blank lines, dot entries are silent",
		body: "total 123\r\n\r\n   \n" +
			"drwxr-xr-x 2 ftp ftp 4096 Mar 03 12:34 .\n" +
			"drwxr-xr-x 9 ftp ftp 4096 Mar 03 12:34 ..\n" +
			"-rw-r--r-- 1 ftp ftp 1 Mar 03 12:34 a\n\n",
		want: []stage.Entry{{Name: "a", Type: stage.File, Size: 1, ModTime: utc(2025, 3, 3, 12, 34)}},
	},
	{
		name: "device files are skipped with errors",
		body: "brw-rw---- 1 root disk 8, 0 Mar 03 12:34 sda\n" +
			"crw-rw-rw- 1 root root 1, 3 Mar 03 12:34 null\n" +
			"prw-r--r-- 1 ftp ftp 0 Mar 03 12:34 fifo\n" +
			"srwxrwxrwx 1 ftp ftp 0 Mar 03 12:34 sock\n" +
			"Drwxrwxrwx 1 ftp ftp 0 Mar 03 12:34 door\n" +
			"-rw-r--r-- 1 ftp ftp 1 Mar 03 12:34 a\n",
		want: []stage.Entry{{Name: "a", Type: stage.File, Size: 1, ModTime: utc(2025, 3, 3, 12, 34)}},
		errs: 5,
	},
	{
		name: "malformed lines",
		body: "garbage\n" +
			"total\n" +
			"-rw-r--r-- 1 ftp ftp 2880 Mar 03 12:34\n" +
			"-rw-r--r-- 1 ftp ftp 2880 Mar 03 12:34 \n" +
			"-rw-r--r-- 1 ftp ftp 2880 Foo 03 12:34 x\n" +
			"-rw-r--r-- 1 ftp ftp 2880 Feb 30 12:34 x\n" +
			"-rw-r--r-- 1 ftp ftp 2880 Mar 03 24:00 x\n" +
			"-rw-r--r-- 1 ftp ftp 2880 Mar 03 12:60 x\n" +
			"-rw-r--r-- 1 ftp ftp 2880 Mar 003 12:34 x\n" +
			"-rw-r--r-- 1 ftp ftp -1 Mar 03 12:34 x\n" +
			"-rwxrwxrwxZ 1 ftp ftp 1 Mar 03 12:34 x\n" +
			"-rw-r--r-- 1 ftp ftp 1 Mar 03 12:34 a/b\n" +
			"-rw-r--r-- 1 ftp ftp 1 Mar 03 12:34 nul\x00\n" +
			"-rw-r--r-- 1 ftp ftp 1 Mar 03 12:34 cr\rx\n" +
			"lrwxrwxrwx 1 ftp ftp 1 Mar 03 12:34 noarrow\n" +
			"lrwxrwxrwx 1 ftp ftp 1 Mar 03 12:34 empty -> \n" +
			"lrwxrwxrwx 1 ftp ftp 1 Mar 03 12:34 nul -> a\x00b\n" +
			"lrwxrwxrwx 1 ftp ftp 1 Mar 03 12:34  -> a\n" +
			"lrwxrwxrwx 1 ftp ftp 1 Mar 03 12:34 a/b -> c\n",
		errs: 19,
	},
	{
		name: "before New Year, a January date is next year",
		now:  time.Date(2024, time.December, 31, 22, 0, 0, 0, time.UTC),
		body: "-rw-r--r-- 1 ftp ftp 1 Jan 01 00:10 next\n-rw-r--r-- 1 ftp ftp 1 Dec 31 21:00 today\n",
		want: []stage.Entry{
			{Name: "next", Type: stage.File, Size: 1, ModTime: utc(2025, 1, 1, 0, 10)},
			{Name: "today", Type: stage.File, Size: 1, ModTime: utc(2024, 12, 31, 21, 0)},
		},
	},
	{
		name: "after New Year, a December date is last year",
		now:  time.Date(2025, time.January, 2, 10, 0, 0, 0, time.UTC),
		body: "-rw-r--r-- 1 ftp ftp 1 Dec 31 23:59 old\n-rw-r--r-- 1 ftp ftp 1 Jan 01 00:10 new\n",
		want: []stage.Entry{
			{Name: "old", Type: stage.File, Size: 1, ModTime: utc(2024, 12, 31, 23, 59)},
			{Name: "new", Type: stage.File, Size: 1, ModTime: utc(2025, 1, 1, 0, 10)},
		},
	},
	{
		name: "a date a few days ahead stays this year, further ahead is last year",
		body: "-rw-r--r-- 1 ftp ftp 1 Mar 12 10:00 skew\n-rw-r--r-- 1 ftp ftp 1 Mar 20 10:00 old\n",
		want: []stage.Entry{
			{Name: "skew", Type: stage.File, Size: 1, ModTime: utc(2025, 3, 12, 10, 0)},
			{Name: "old", Type: stage.File, Size: 1, ModTime: utc(2024, 3, 20, 10, 0)},
		},
	},
	{
		name: "29 February goes back to a leap year",
		body: "-rw-r--r-- 1 ftp ftp 1 Feb 29 12:00 leap\n",
		want: []stage.Entry{{Name: "leap", Type: stage.File, Size: 1, ModTime: utc(2024, 2, 29, 12, 0)}},
	},
	{
		name: "now in another zone is read as UTC",
		now:  time.Date(2025, time.January, 1, 1, 0, 0, 0, time.FixedZone("CET", 3600)),
		body: "-rw-r--r-- 1 ftp ftp 1 Dec 31 23:30 a\n",
		want: []stage.Entry{{Name: "a", Type: stage.File, Size: 1, ModTime: utc(2024, 12, 31, 23, 30)}},
	},
	{
		name: "IIS",
		body: "03-03-24  12:34PM       <DIR>          nested\r\n" +
			"03-03-2024  09:05AM            2880 jbk802010_flt.fits\r\n" +
			"03-03-2024  21:05                 7 late  name\r\n" +
			"12-31-99  12:00AM                 1 midnight\r\n" +
			"01-02-70  12:30PM                 2 noon\r\n" +
			"01-02-2025  01:00pm       <DIR>           lead\r\n",
		want: []stage.Entry{
			{Name: "nested", Type: stage.Dir, ModTime: utc(2024, 3, 3, 12, 34)},
			{Name: "jbk802010_flt.fits", Type: stage.File, Size: 2880, ModTime: utc(2024, 3, 3, 9, 5)},
			{Name: "late  name", Type: stage.File, Size: 7, ModTime: utc(2024, 3, 3, 21, 5)},
			{Name: "midnight", Type: stage.File, Size: 1, ModTime: utc(1999, 12, 31, 0, 0)},
			{Name: "noon", Type: stage.File, Size: 2, ModTime: utc(1970, 1, 2, 12, 30)},
			{Name: "lead", Type: stage.Dir, ModTime: utc(2025, 1, 2, 13, 0)},
		},
	},
	{
		name: "malformed IIS lines",
		body: "13-03-24  12:34PM       <DIR>          month\n" +
			"02-30-24  12:34PM       <DIR>          day\n" +
			"03-03-24  13:34PM       <DIR>          hour\n" +
			"03-03-24  00:34AM       <DIR>          zero\n" +
			"03-03-24  12:34PM       <FILE>         kind\n" +
			"03-03-24  12:34PM       <DIR>\n" +
			"03-03-24  12:34PM\n" +
			"03/03/24  12:34PM       <DIR>          slash\n" +
			"03-03-24  12:34PM       <DIR>          ..\n" +
			"03-03-24  12:34PM                  1 a/b\n",
		errs: 9,
	},
}

func TestParseList(t *testing.T) {
	for _, tc := range listCases {
		t.Run(tc.name, func(t *testing.T) {
			now := tc.now
			if now.IsZero() {
				now = listNow
			}
			got, errs := ParseList([]byte(tc.body), now)
			checkEntries(t, got, tc.want)
			if len(errs) != tc.errs {
				t.Errorf("got %d errors, want %d: %v", len(errs), tc.errs, errs)
			}
		})
	}
}

// TestParseListErrors checks that an error names its line and quotes it.
func TestParseListErrors(t *testing.T) {
	body := "total 1\n-rw-r--r-- 1 ftp ftp 1 Mar 03 12:34 a\ncrw-rw-rw- 1 root root 1, 3 Mar 03 12:34 null\r\n" +
		"-rw-r--r-- 1 ftp ftp 1 Mar 03 12:34 a/b\n"
	_, errs := ParseList([]byte(body), listNow)
	if len(errs) != 2 {
		t.Fatalf("got %d errors, want 2: %v", len(errs), errs)
	}
	want := []string{
		`list line 3: device, pipe or socket skipped: "crw-rw-rw- 1 root root 1, 3 Mar 03 12:34 null"`,
		`list line 4: name "a/b" holds '/': invalid argument: "-rw-r--r-- 1 ftp ftp 1 Mar 03 12:34 a/b"`,
	}
	for i, err := range errs {
		if err.Error() != want[i] {
			t.Errorf("error %d = %q, want %q", i, err, want[i])
		}
	}
	if !errors.Is(errs[1], fs.ErrInvalid) {
		t.Errorf("%v does not wrap fs.ErrInvalid", errs[1])
	}
}

type mlsdCase struct {
	name string
	body string
	want []stage.Entry
	errs int
}

var mlsdCases = []mlsdCase{
	{
		name: "file and dir",
		body: "type=file;size=2880;modify=20240303123456;unix.mode=0644;perm=r; jbk802010_flt.fits\r\n" +
			"type=dir;modify=20240115000000;perm=el; nested\r\n",
		want: []stage.Entry{
			{Name: "jbk802010_flt.fits", Type: stage.File, Size: 2880, ModTime: time.Date(2024, 3, 3, 12, 34, 56, 0, time.UTC)},
			{Name: "nested", Type: stage.Dir, ModTime: utc(2024, 1, 15, 0, 0)},
		},
	},
	{
		name: "cdir, pdir and dot names are silent",
		body: "type=cdir;modify=20240115000000; .\ntype=pdir;modify=20240115000000; ..\n" +
			"type=cdir; /home/ftp/data\ntype=dir; .\ntype=file;size=1; a\n",
		want: []stage.Entry{{Name: "a", Type: stage.File, Size: 1}},
	},
	{
		name: "case-insensitive facts, fraction, spaces and semicolons in name",
		body: "Type=File;Size=5;Modify=20240303123456.789;UNIX.owner=ftp; name with ; and  spaces;\n",
		want: []stage.Entry{{Name: "name with ; and  spaces;", Type: stage.File, Size: 5,
			ModTime: time.Date(2024, 3, 3, 12, 34, 56, 789e6, time.UTC)}},
	},
	{
		name: "symlinks",
		body: "type=OS.unix=slink:with space.fits;size=15;modify=20241102100000; latest.fits\n" +
			"type=os.unix=SLINK:/abs/path/x.fits; abs\n" +
			"type=OS.unix=symlink:rel/y; sym\n",
		want: []stage.Entry{
			{Name: "latest.fits", Type: stage.Link, Size: 15, ModTime: utc(2024, 11, 2, 10, 0), Target: "with space.fits"},
			{Name: "abs", Type: stage.Link, Target: "/abs/path/x.fits"},
			{Name: "sym", Type: stage.Link, Target: "rel/y"},
		},
	},
	{
		name: "unicode, long name, leading space and huge size",
		body: "type=file;size=9223372036854775807; naïve 日本.fits\n" +
			"type=file;size=1;  lead\n" +
			"type=file;size=2; " + longName + "\n",
		want: []stage.Entry{
			{Name: "naïve 日本.fits", Type: stage.File, Size: 1<<63 - 1},
			{Name: " lead", Type: stage.File, Size: 1},
			{Name: longName, Type: stage.File, Size: 2},
		},
	},
	{
		name: "malformed lines",
		body: "no facts at all\n" +
			" nofacts\n" +
			"size=5; notype\n" +
			"type=file;size=5\n" +
			"type=file;\n" +
			"type=file; \n" +
			"type=file;size=abc; x\n" +
			"type=file;size=-1; x\n" +
			"type=file;size=9223372036854775808; x\n" +
			"type=file;modify=2024; x\n" +
			"type=file;modify=20241301000000; x\n" +
			"type=file;modify=20240303123456.; x\n" +

			"type=OS.unix=slink:a\rb; cr\n" +
			"type=OS.unix=blkdev; sda\n" +
			"type=weird; x\n" +
			"type file; x\n" +
			"type=file; a/b\n" +
			"type=file; nul\x00\n",
		errs: 18,
	},
	{
		name: "link without target",
		body: "type=OS.unix=symlink; bare\ntype=OS.unix=slink:;size=15; empty\n",
		want: []stage.Entry{{Name: "bare", Type: stage.Link}, {Name: "empty", Type: stage.Link, Size: 15}},
	},
}

func TestParseMLSD(t *testing.T) {
	for _, tc := range mlsdCases {
		t.Run(tc.name, func(t *testing.T) {
			got, errs := ParseMLSD([]byte(tc.body))
			checkEntries(t, got, tc.want)
			if len(errs) != tc.errs {
				t.Errorf("got %d errors, want %d: %v", len(errs), tc.errs, errs)
			}
		})
	}
}

func TestParseMLSDErrors(t *testing.T) {
	_, errs := ParseMLSD([]byte("type=file;size=1; ok\ntype=OS.unix=blkdev; sda\n"))
	want := `mlsd line 2: ` + errs0(t)
	if len(errs) != 1 || errs[0].Error() != want {
		t.Fatalf("errors = %v, want [%s]", errs, want)
	}
}

// errs0 is the error text ParseMLSD gives for a block device entry.
func errs0(t *testing.T) string {
	_, errs := ParseMLSD([]byte("type=OS.unix=blkdev; sda\n"))
	if len(errs) != 1 {
		t.Fatalf("block device: %v", errs)
	}
	return errs[0].Error()[len("mlsd line 1: "):]
}

func TestCheckName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
		base error
	}{
		{"a.fits", true, nil},
		{"with space", true, nil},
		{" lead", true, nil},
		{"...", true, nil},
		{"日本", true, nil},
		{"", false, fs.ErrInvalid},
		{".", false, fs.ErrInvalid},
		{"..", false, fs.ErrInvalid},
		{"a/b", false, fs.ErrInvalid},
		{"/", false, fs.ErrInvalid},
		{"a\x00b", false, ErrBadName},
		{"a\rb", false, ErrBadName},
		{"a\nb", false, ErrBadName},
	} {
		err := CheckName(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("CheckName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err != nil && !errors.Is(err, tc.base) {
			t.Errorf("CheckName(%q) = %v, does not wrap %v", tc.name, err, tc.base)
		}
		if err != nil && !strings.Contains(err.Error(), strconv.Quote(tc.name)) && tc.name != "" {
			t.Errorf("CheckName(%q) = %v, does not quote the name", tc.name, err)
		}
	}
}

func checkEntries(t *testing.T, got, want []stage.Entry) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d entries, want %d:\n got %s\nwant %s", len(got), len(want), fmtEntries(got), fmtEntries(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Name != w.Name || g.Type != w.Type || g.Size != w.Size || g.Target != w.Target || !g.ModTime.Equal(w.ModTime) {
			t.Errorf("entry %d:\n got %s\nwant %s", i, fmtEntries(got[i:i+1]), fmtEntries(want[i:i+1]))
		}
		if g.ModTime.Location() != time.UTC {
			t.Errorf("entry %d: ModTime %v is not UTC", i, g.ModTime)
		}
	}
}

func fmtEntries(es []stage.Entry) string {
	var b strings.Builder
	for _, e := range es {
		fmt.Fprintf(&b, "{%q %v %d %s %q} ", e.Name, e.Type, e.Size, e.ModTime.Format(time.RFC3339Nano), e.Target)
	}
	return b.String()
}

// benchListing builds a LIST body of n lines in the vsftpd layout, with a
// mix of files, directories and links.
func benchListing(n int) []byte {
	var b strings.Builder
	for i := range n {
		switch i % 10 {
		case 0:
			fmt.Fprintf(&b, "drwxr-xr-x    2 ftp      ftp          4096 Jan 15  2024 dir%06d\r\n", i)
		case 1:
			fmt.Fprintf(&b, "lrwxrwxrwx    1 ftp      ftp            15 Nov 02 10:00 link%06d -> target %d.fits\r\n", i, i)
		default:
			fmt.Fprintf(&b, "-rw-r--r--    1 ftp      ftp      %8d Mar 03 12:34 jbk%06d_flt.fits\r\n", i*2880, i)
		}
	}
	return []byte(b.String())
}

func BenchmarkParseList(b *testing.B) {
	data := benchListing(100_000)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		entries, errs := ParseList(data, listNow)
		if len(entries) != 100_000 || len(errs) != 0 {
			b.Fatalf("got %d entries and %d errors", len(entries), len(errs))
		}
	}
}
