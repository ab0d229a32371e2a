package io.vblk.virtio.vhost;

import static io.vblk.virtio.vhost.VhostUser.*;

import io.vblk.aio.LibC;
import io.vblk.aio.Native;
import io.vblk.aio.Syscalls;
import io.vblk.block.Errno;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * The front-end's memory regions, mapped into this process (MAP_SHARED of the fds that came with
 * SET_MEM_TABLE / ADD_MEM_REG). Translates guest-physical addresses (descriptor buffers) and
 * front-end virtual addresses (SET_VRING_ADDR) to host addresses, only when the whole range lies
 * inside one region, so nothing outside a mapping is ever touched. libvhost-user's
 * vu_gpa_to_va / qva_to_va and the dev->regions array.
 *
 * <p>A table is an immutable snapshot ({@link #with}, {@link #without} return new tables); the
 * mappings themselves are shared and are unmapped by {@link Region#unmap()} only once no running
 * ring can use them (the protocol handler refuses removal under a running ring).
 */
public final class GuestMemoryTable {
    private static final LibC C = Native.LIBC;

    /** One mapped region. {@code host} is the address of guest_phys in this process. */
    public record Region(long guestPhys, long size, long userAddr, long mmapOffset, long mapBase, long mapLen) {
        public long host() { return mapBase + mmapOffset; }

        public void unmap() { munmap(mapBase, mapLen); }

        boolean overlaps(Region o) {
            return guestPhys < o.guestPhys + o.size && o.guestPhys < guestPhys + size
                    || userAddr < o.userAddr + o.size && o.userAddr < userAddr + size;
        }

        @Override
        public String toString() {
            return String.format("gpa 0x%x size 0x%x uva 0x%x mmap_offset 0x%x", guestPhys, size, userAddr, mmapOffset);
        }
    }

    public static final GuestMemoryTable EMPTY = new GuestMemoryTable(List.of());

    private final List<Region> regions;

    private GuestMemoryTable(List<Region> regions) { this.regions = regions; }

    public List<Region> regions() { return regions; }

    /**
     * Validates a region description and maps {@code fd} (MAP_SHARED, read-write) so that
     * guest_phys lands at {@code mapBase + mmapOffset}. Does not close {@code fd}. Returns the region
     * or throws {@link VhostUserProtocolException} naming what was wrong.
     */
    public static Region map(long guestPhys, long size, long userAddr, long mmapOffset, int fd) throws VhostUserProtocolException {
        if (size <= 0 || mmapOffset < 0 || guestPhys + size < guestPhys || userAddr + size < userAddr
                || Long.compareUnsigned(guestPhys + size, guestPhys) < 0 || Long.compareUnsigned(userAddr + size, userAddr) < 0
                || mmapOffset + size < size) {
            throw new VhostUserProtocolException("bad memory region " + String.format(
                    "gpa 0x%x size 0x%x uva 0x%x mmap_offset 0x%x", guestPhys, size, userAddr, mmapOffset));
        }
        long len = mmapOffset + size;
        long base = mmapShared(fd, len);
        if (base < 0) {
            int e = (int) -base;
            throw new VhostUserProtocolException("mmap of memory region (fd " + fd + ", " + len + " bytes) failed: " + Errno.describe(e));
        }
        return new Region(guestPhys, size, userAddr, mmapOffset, base, len);
    }

    /** A table with {@code r} added; throws (and leaves {@code r} for the caller to unmap) on overlap or too many slots. */
    public GuestMemoryTable with(Region r, int maxRegions) throws VhostUserProtocolException {
        if (regions.size() >= maxRegions) throw new VhostUserProtocolException("more than " + maxRegions + " memory regions");
        for (Region o : regions) {
            if (o.overlaps(r)) throw new VhostUserProtocolException("memory region " + r + " overlaps " + o);
        }
        List<Region> l = new ArrayList<>(regions);
        l.add(r);
        return new GuestMemoryTable(Collections.unmodifiableList(l));
    }

    /** Index of the region matching guest_phys, user_addr and size (REM_MEM_REG), or -1. */
    public int find(long guestPhys, long size, long userAddr) {
        for (int i = 0; i < regions.size(); i++) {
            Region r = regions.get(i);
            if (r.guestPhys == guestPhys && r.size == size && r.userAddr == userAddr) return i;
        }
        return -1;
    }

    public GuestMemoryTable without(int index) {
        List<Region> l = new ArrayList<>(regions);
        l.remove(index);
        return new GuestMemoryTable(Collections.unmodifiableList(l));
    }

    /** Unmaps every region of this table. */
    public void unmapAll() { for (Region r : regions) r.unmap(); }

    /** Host address of guest-physical [gpa, gpa+len), or -1 if the range is not wholly inside one region. */
    public long gpaToHost(long gpa, long len) {
        if (len < 0) return -1;
        for (Region r : regions) {
            long off = gpa - r.guestPhys;
            if (Long.compareUnsigned(off, r.size) < 0 && Long.compareUnsigned(len, r.size - off) <= 0) return r.host() + off;
        }
        return -1;
    }

    /** Host address of front-end virtual [uva, uva+len), or -1 if not wholly inside one region. */
    public long uvaToHost(long uva, long len) {
        if (len < 0) return -1;
        for (Region r : regions) {
            long off = uva - r.userAddr;
            if (Long.compareUnsigned(off, r.size) < 0 && Long.compareUnsigned(len, r.size - off) <= 0) return r.host() + off;
        }
        return -1;
    }

    public int size() { return regions.size(); }

    // libc mmap through jnr fails with EINVAL on this JDK/jnr combination (found by the virtio
    // engineer); the raw syscall works.
    private static final long SYS_MMAP = Syscalls.X86_64 ? 9 : 222, SYS_MUNMAP = Syscalls.X86_64 ? 11 : 215;

    /** mmap(NULL, len, RW, MAP_SHARED, fd, 0): the address, or -errno. */
    static long mmapShared(int fd, long len) {
        long r = C.syscall(SYS_MMAP, 0, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        return r == -1 ? -Native.errno() : r;
    }

    static void munmap(long addr, long len) { C.syscall(SYS_MUNMAP, addr, len); }
}
