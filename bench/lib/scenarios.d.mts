export interface Scenario {
  name: string;
  title: string;
  size: { full: string; quick: string };
  source: { type: 'nbd' | 'file'; backend?: string; delayReadMs?: number; delayWriteMs?: number; rateBits?: string; threads?: number };
  destination: {
    type: 'null' | 'file' | 'stdout' | 'nbd' | 'info';
    backend?: string;
    delayReadMs?: number;
    delayWriteMs?: number;
    rateBits?: string;
    threads?: number;
  };
  nbdcopyArgs?: string[];
  runsFactor?: number;
  startupBound?: boolean;
}
export declare const SCENARIOS: Scenario[];
export declare function scenarioNames(): string[];
export declare function selectScenarios(names: string[] | undefined): Scenario[];
export declare function scenarioSize(scenario: Scenario, quick: boolean): number;
