// sifcheck: an independent SIF reader/writer for berth's tests, built on sylabs' SIF library
// (Debian's golang-github-sylabs-sif-dev). `sifcheck read FILE` prints the header and the
// descriptors as sylabs' library sees them; `sifcheck write FILE SQUASHFS DEFFILE` writes a SIF
// the way Apptainer's build does (definition file + primary squashfs system partition).
package main

import (
	"fmt"
	"os"

	"github.com/sylabs/sif/v2/pkg/sif"
)

func die(err error) {
	fmt.Fprintln(os.Stderr, "sifcheck:", err)
	os.Exit(1)
}

func read(path string) {
	f, err := sif.LoadContainerFromPath(path, sif.OptLoadWithFlag(os.O_RDONLY))
	if err != nil {
		die(err)
	}
	defer f.UnloadContainer()
	fmt.Printf("launch=%q\nversion=%s\narch=%s\nid=%s\ndescriptors=%d/%d\n",
		f.LaunchScript(), f.Version(), f.PrimaryArch(), f.ID(),
		f.DescriptorsTotal()-f.DescriptorsFree(), f.DescriptorsTotal())
	f.WithDescriptors(func(d sif.Descriptor) bool {
		fmt.Printf("object id=%d group=%d type=%s offset=%d size=%d", d.ID(), d.GroupID(), d.DataType(), d.Offset(), d.Size())
		if d.DataType() == sif.DataPartition {
			fs, pt, arch, err := d.PartitionMetadata()
			if err != nil {
				die(err)
			}
			fmt.Printf(" fs=%s part=%s arch=%s", fs, pt, arch)
		}
		fmt.Println()
		return false
	})
}

func write(path, squashfs, deffile string) {
	sq, err := os.Open(squashfs)
	if err != nil {
		die(err)
	}
	defer sq.Close()
	def, err := os.Open(deffile)
	if err != nil {
		die(err)
	}
	defer def.Close()
	defDI, err := sif.NewDescriptorInput(sif.DataDeffile, def)
	if err != nil {
		die(err)
	}
	partDI, err := sif.NewDescriptorInput(sif.DataPartition, sq,
		sif.OptPartitionMetadata(sif.FsSquash, sif.PartPrimSys, "amd64"))
	if err != nil {
		die(err)
	}
	f, err := sif.CreateContainerAtPath(path,
		sif.OptCreateWithLaunchScript("#!/usr/bin/env run-singularity\n"),
		sif.OptCreateWithDescriptors(defDI, partDI))
	if err != nil {
		die(err)
	}
	if err := f.UnloadContainer(); err != nil {
		die(err)
	}
	if err := os.Chmod(path, 0o755); err != nil {
		die(err)
	}
}

func main() {
	switch {
	case len(os.Args) == 3 && os.Args[1] == "read":
		read(os.Args[2])
	case len(os.Args) == 5 && os.Args[1] == "write":
		write(os.Args[2], os.Args[3], os.Args[4])
	default:
		fmt.Fprintln(os.Stderr, "usage: sifcheck read FILE | sifcheck write FILE SQUASHFS DEFFILE")
		os.Exit(2)
	}
}
