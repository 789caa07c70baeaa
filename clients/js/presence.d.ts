// Types of presenced-client (presence.js). The socket is a socket.io-client Socket connected to
// presenced; the module itself imports nothing.
import type { Socket } from 'socket.io-client';

export type PresenceStatus = 'online' | 'away' | 'busy' | 'dnd' | 'invisible';

/** A user as a view shows them. */
export interface PresenceUser {
    userId: string;
    status: PresenceStatus;
    /** The user's metadata object, or null when they have none. */
    metadata: Record<string, unknown> | null;
}

export interface PresenceError {
    /** invalid_argument, forbidden, limit_exceeded, store_unavailable, timeout, ... */
    code: string;
    message: string;
}

export interface IdleOptions {
    /** Milliseconds without input before the user is shown as away (default 5 minutes). */
    after?: number;
    /** Also away while the tab is hidden (default true). */
    whenHidden?: boolean;
    /** The status shown while idle (default "away"). */
    status?: PresenceStatus;
    /** Where input is watched (default the global window and document). */
    window?: EventTarget;
    document?: EventTarget & { visibilityState?: string };
}

/** A clock for tests; the default is the global one. */
export interface PresenceClock {
    now(): number;
    setTimeout(fn: () => void, ms: number): unknown;
    clearTimeout(handle: unknown): void;
}

interface CommonOptions {
    /** Ask the server to batch changes: at most one presence:diff per batchMs (server default 200). */
    batchMs?: number;
    /** Opt-in idle detection (browsers): true for the defaults. */
    idle?: boolean | IdleOptions;
    /** How long to wait for an answer of the server (default 10 s). */
    ackTimeoutMs?: number;
    clock?: PresenceClock;
    window?: EventTarget;
    document?: EventTarget & { visibilityState?: string };
}

export type PresenceOptions =
    | (CommonOptions & { room: string; userIds?: never })
    | (CommonOptions & { userIds: string[]; room?: never });

export interface PresenceEvents {
    join: (user: PresenceUser) => void;
    leave: (user: PresenceUser) => void;
    update: (user: PresenceUser, previous: PresenceUser) => void;
    sync: (users: PresenceUser[]) => void;
    error: (error: PresenceError) => void;
}

export interface Presence {
    /** The users in the view, sorted by id (copies). */
    list(): PresenceUser[];
    /** One user of the view, or undefined. */
    get(userId: string): PresenceUser | undefined;
    /** Listen to an event; returns a function that stops listening. */
    on<E extends keyof PresenceEvents>(event: E, fn: PresenceEvents[E]): () => void;
    off<E extends keyof PresenceEvents>(event: E, fn: PresenceEvents[E]): void;
    /** Set this socket's user's status (and metadata); resolves once the server accepted it. */
    setStatus(status: PresenceStatus, metadata?: Record<string, unknown>): Promise<void>;
    /** Resolves after the first snapshot was applied. */
    readonly ready: Promise<void>;
    /** Whether the view is in step with the server. */
    readonly synced: boolean;
    /** The sequence of the last event the view reflects, null before the first snapshot. */
    readonly seq: string | null;
    /** Whether idle detection shows the user as away right now. */
    readonly idle: boolean;
    /** Stop listening and tell the server to stop sending this view. */
    close(): void;
}

/** A live view of a room's members ({room}) or of the online users of a list ({userIds}).
 * One view per room, and one contact list, per socket at a time (else it throws). */
export function presence(socket: Socket, options: PresenceOptions): Presence;

/** Order of two sequences ("ms-n" or "n"): negative, 0 or positive. */
export function compareSeq(a: string, b: string): number;
