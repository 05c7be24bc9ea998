/** @typedef {import('./model.js').Price} Price */
/** @typedef {import('./model.js').ChannelEvent} ChannelEvent */
/** @typedef {import('./model.js').Position} Position */
export class Holdings {
    /** @type {Set<string>} canonical symbols followed */
    symbols: Set<string>;
    /** @type {Set<string>} channels followed */
    channels: Set<string>;
    /** @type {Map<string, Price>} */
    prices: Map<string, Price>;
    /** @type {Map<string, number>} when each price arrived (this browser's clock) */
    receivedAt: Map<string, number>;
    /** @type {Map<string, Position>} */
    positions: Map<string, Position>;
    filter: SeqFilter;
    /** The last SSE event id: a new stream resumes from it. */
    lastSseId: string;
    /**
     * Follows `symbols` (any accepted spelling); returns the canonical ones that are new.
     * @param {Iterable<string>} symbols
     * @returns {string[]}
     */
    addSymbols(symbols: Iterable<string>): string[];
    /**
     * Stops following `symbols` and forgets their prices; returns those that were followed.
     * @param {Iterable<string>} symbols
     * @returns {string[]}
     */
    removeSymbols(symbols: Iterable<string>): string[];
    /**
     * @param {Iterable<string>} channels
     * @returns {string[]} the new ones
     */
    addChannels(channels: Iterable<string>): string[];
    /**
     * @param {Iterable<string>} channels
     * @returns {string[]} those that were followed (their positions are forgotten)
     */
    removeChannels(channels: Iterable<string>): string[];
    /**
     * Takes the prices that are newer than the ones held, for followed symbols.
     * @param {Price[] | undefined} list
     * @param {number} now
     * @returns {Price[]} those taken, to be told
     */
    apply(list: Price[] | undefined, now: number): Price[];
    /**
     * An event of a followed channel, past the channel's position (a repeat is dropped).
     * @param {ChannelEvent} e
     * @returns {boolean} whether it is new
     */
    event(e: ChannelEvent): boolean;
    /**
     * The service could not replay what these channels missed: their positions are dropped
     * (the next events start them again).
     * @param {string[]} channels
     */
    lose(channels: string[]): void;
    /** True when a followed symbol has had no price for `staleMs` (counted from `since`). */
    stale(now: number, staleMs: number, since: number): boolean;
    /**
     * The `subscribe`s a new WebSocket sends: the symbols, then the channels with where each
     * stands. Apart, so a channel the service does not serve (refused whole) costs no symbol.
     * @returns {Record<string, unknown>[]}
     */
    greeting(): Record<string, unknown>[];
    /**
     * A new SSE stream's query: its symbols, channels, and where it resumes.
     * @returns {Record<string, string>}
     */
    streamQuery(): Record<string, string>;
}
export type Price = import("./model.js").Price;
export type ChannelEvent = import("./model.js").ChannelEvent;
export type Position = import("./model.js").Position;
import { SeqFilter } from './model.js';
