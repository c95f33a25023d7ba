export interface Scenario {
  name: string;
  title: string;
  size: { full: string; quick: string };
  source: { type: 'nbd' | 'file'; backend?: string; delayReadMs?: number; threads?: number };
  destination: { type: 'null' | 'file' | 'stdout' | 'nbd' | 'info'; backend?: string };
  nbdcopyArgs?: string[];
  runsFactor?: number;
}
export declare const SCENARIOS: Scenario[];
export declare function scenarioNames(): string[];
export declare function selectScenarios(names: string[] | undefined): Scenario[];
export declare function scenarioSize(scenario: Scenario, quick: boolean): number;
