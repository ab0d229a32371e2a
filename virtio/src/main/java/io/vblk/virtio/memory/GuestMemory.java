package io.vblk.virtio.memory;

import io.vblk.aio.Native;
import io.vblk.aio.Syscalls;
import io.vblk.block.BlockException;
import io.vblk.block.IoVector;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Guest RAM as a set of regions, guest-physical address to host memory: rust-vmm's
 * GuestMemoryMmap, QEMU's address_space_map for RAM. Every guest address the device uses goes
 * through {@link #translate} or {@link #appendTo}, which check bounds: an address outside every
 * region yields -1 / false, never a stray access.
 *
 * <p>Regions are kept in an immutable sorted array replaced on change (copy on write), so
 * translation from any I/O thread needs no lock. Mappings this object created (memfd, anonymous, fd)
 * are unmapped by {@link #close()}; the caller must stop every queue first.
 */
public final class GuestMemory implements AutoCloseable {
    private static final int PROT_READ = 1, PROT_WRITE = 2, MAP_SHARED = 1, MAP_PRIVATE = 2, MAP_ANONYMOUS = 0x20;
    private static final int MFD_CLOEXEC = 1;

    private volatile GuestRegion[] regions = new GuestRegion[0]; // replaced under "this"
    private final List<long[]> owned = new ArrayList<>();         // {addr, len} to munmap; guarded by "this"
    private final List<Integer> ownedFds = new ArrayList<>();     // guarded by "this"

    public GuestMemory() {}

    /** Guest RAM of {@code size} bytes at GPA 0 in anonymous private memory. */
    public static GuestMemory anonymous(long size) throws BlockException {
        GuestMemory m = new GuestMemory();
        m.addAnonymous(0, size);
        return m;
    }

    /** Guest RAM of {@code size} bytes at GPA 0 in a memfd (shareable with another process). */
    public static GuestMemory memfd(long size) throws BlockException {
        GuestMemory m = new GuestMemory();
        m.addMemfd(0, size);
        return m;
    }

    /** Adds anonymous memory at {@code gpa}. */
    public synchronized GuestRegion addAnonymous(long gpa, long size) throws BlockException {
        long addr = Native.check(mmap(size, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), "mmap");
        owned.add(new long[] {addr, size});
        return add(new GuestRegion(gpa, size, addr, -1));
    }

    /** Adds a fresh memfd of {@code size} bytes at {@code gpa}; the fd stays open until close. */
    public synchronized GuestRegion addMemfd(long gpa, long size) throws BlockException {
        int fd = (int) Native.check(Native.LIBC.memfd_create("vblk-guest", MFD_CLOEXEC), "memfd_create");
        ownedFds.add(fd);
        Native.check(Native.LIBC.ftruncate(fd, size), "ftruncate");
        return addFd(fd, 0, gpa, size, -1);
    }

    /**
     * Maps {@code size} bytes of {@code fd} from {@code mmapOffset} shared, as guest-physical
     * {@code gpa}, remembering the front-end's virtual address {@code userAddr} (vhost-user
     * SET_MEM_TABLE / ADD_MEM_REG). The caller keeps ownership of the fd.
     */
    public synchronized GuestRegion addFd(int fd, long mmapOffset, long gpa, long size, long userAddr) throws BlockException {
        long addr = Native.check(mmap(size, MAP_SHARED, fd, mmapOffset), "mmap guest region");
        owned.add(new long[] {addr, size});
        try {
            return add(new GuestRegion(gpa, size, addr, userAddr));
        } catch (RuntimeException e) {
            munmap(addr, size);
            owned.remove(owned.size() - 1);
            throw e;
        }
    }

    /** Adds caller-provided native memory as guest-physical {@code gpa}; the caller keeps it alive. */
    public GuestRegion addSegment(long gpa, MemorySegment seg) {
        if (!seg.isNative()) throw new IllegalArgumentException("guest memory must be a native segment");
        return add(new GuestRegion(gpa, seg.byteSize(), seg.address(), -1));
    }

    /** Adds a region; rejects overlap in guest-physical space (EINVAL as IllegalArgumentException). */
    public synchronized GuestRegion add(GuestRegion r) {
        for (GuestRegion o : regions) {
            if (r.gpa() < o.gpa() + o.size() && o.gpa() < r.gpa() + r.size()) {
                throw new IllegalArgumentException("guest region " + describe(r) + " overlaps " + describe(o));
            }
        }
        GuestRegion[] n = Arrays.copyOf(regions, regions.length + 1);
        n[n.length - 1] = r;
        Arrays.sort(n, (a, b) -> Long.compareUnsigned(a.gpa(), b.gpa()));
        regions = n;
        return r;
    }

    /** Removes the region starting at {@code gpa} (vhost-user REM_MEM_REG) and unmaps it if owned. */
    public synchronized boolean remove(long gpa) {
        GuestRegion[] cur = regions;
        for (int i = 0; i < cur.length; i++) {
            if (cur[i].gpa() == gpa) {
                GuestRegion r = cur[i];
                GuestRegion[] n = new GuestRegion[cur.length - 1];
                System.arraycopy(cur, 0, n, 0, i);
                System.arraycopy(cur, i + 1, n, i, cur.length - i - 1);
                regions = n;
                for (int j = 0; j < owned.size(); j++) {
                    if (owned.get(j)[0] == r.host()) {
                        munmap(r.host(), owned.get(j)[1]);
                        owned.remove(j);
                        break;
                    }
                }
                return true;
            }
        }
        return false;
    }

    public GuestRegion[] regions() {
        return regions.clone();
    }

    /** The region holding guest-physical {@code gpa}, or null. */
    public GuestRegion find(long gpa) {
        GuestRegion[] rs = regions;
        int lo = 0, hi = rs.length - 1;
        while (lo <= hi) {
            int mid = (lo + hi) >>> 1;
            GuestRegion r = rs[mid];
            if (Long.compareUnsigned(gpa, r.gpa()) < 0) {
                hi = mid - 1;
            } else if (Long.compareUnsigned(gpa - r.gpa(), r.size()) >= 0) {
                lo = mid + 1;
            } else {
                return r;
            }
        }
        return null;
    }

    /**
     * Host address of [gpa, gpa+len) if the whole range lies inside one region, else -1. Use for
     * structures that must be contiguous (rings, indirect tables, headers read in place).
     */
    public long translate(long gpa, long len) {
        if (len < 0) return -1;
        GuestRegion r = find(gpa);
        if (r == null || r.size() - (gpa - r.gpa()) < len) return -1;
        return r.host() + (gpa - r.gpa());
    }

    /**
     * Appends [gpa, gpa+len) to {@code iov} as host slices, one per region crossed. Returns false
     * (and leaves whatever was appended; callers reset on failure) if any byte is outside guest RAM.
     */
    public boolean appendTo(IoVector iov, long gpa, long len) {
        while (len > 0) {
            GuestRegion r = find(gpa);
            if (r == null) return false;
            long off = gpa - r.gpa();
            long n = Math.min(len, r.size() - off);
            iov.add(r.host() + off, n);
            gpa += n;
            len -= n;
        }
        return len == 0;
    }

    /** Guest-physical address of front-end virtual address {@code uaddr} (vhost-user ring addresses), or -1. */
    public long userToGpa(long uaddr) {
        for (GuestRegion r : regions) {
            if (r.containsUser(uaddr, 0) && uaddr - r.userAddr() < r.size()) {
                return r.gpa() + (uaddr - r.userAddr());
            }
        }
        return -1;
    }

    /** Host address of front-end virtual range [uaddr, uaddr+len) inside one region, or -1. */
    public long translateUser(long uaddr, long len) {
        for (GuestRegion r : regions) {
            if (r.containsUser(uaddr, len)) {
                return r.host() + (uaddr - r.userAddr());
            }
        }
        return -1;
    }

    /** Total bytes of guest RAM. */
    public long totalSize() {
        long s = 0;
        for (GuestRegion r : regions) s += r.size();
        return s;
    }

    /** Unmaps what this object mapped and closes memfds it created. */
    @Override
    public synchronized void close() {
        regions = new GuestRegion[0];
        for (long[] m : owned) munmap(m[0], m[1]);
        owned.clear();
        for (int fd : ownedFds) Native.LIBC.close(fd);
        ownedFds.clear();
    }

    // libc's mmap through jnr returns EINVAL on this JDK/jnr combination; the raw syscall works.
    private static final long SYS_MMAP = Syscalls.X86_64 ? 9 : 222, SYS_MUNMAP = Syscalls.X86_64 ? 11 : 215;

    private static long mmap(long size, int flags, int fd, long offset) {
        return Native.LIBC.syscall(SYS_MMAP, 0, size, PROT_READ | PROT_WRITE, flags, fd, offset);
    }

    private static void munmap(long addr, long size) {
        Native.LIBC.syscall(SYS_MUNMAP, addr, size);
    }

    private static String describe(GuestRegion r) {
        return String.format("[0x%x, 0x%x)", r.gpa(), r.gpa() + r.size());
    }
}
